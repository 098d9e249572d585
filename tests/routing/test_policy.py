import msgspec
import pytest

from hybridgate.config.settings import LocalModel, OpenAIModel, RouteGroup
from hybridgate.core.errors import ResidencyViolation
from hybridgate.core.types import ChatRequest
from hybridgate.routing.policy import RoutedGroup

LOCAL = LocalModel(name="local", n_ctx=1024)
REMOTE = OpenAIModel(name="gpt", base_url="http://x")


def req(content, **kw):
    return msgspec.convert({"model": "auto", "messages": [{"role": "user", "content": content}],
                            **kw}, ChatRequest)


def group(**kw):
    return RoutedGroup(RouteGroup(name="auto", weak="local", strong="gpt", **kw), LOCAL,
                       frozenset({"local"}))


def chat(messages, **kw):
    return msgspec.convert({"model": "auto", "messages": messages, **kw}, ChatRequest)


@pytest.mark.parametrize("messages", [
    [{"role": "system", "content": "Reply to ann@example.org"},
     {"role": "user", "content": "Explain quantum chromodynamics."}],
    [{"role": "user", "content": "my SSN is 078-05-1120"},
     {"role": "assistant", "content": "noted"},
     {"role": "user", "content": "Explain quantum chromodynamics."}],
    [{"role": "user", "content": "look it up"},
     {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {
         "name": "crm", "arguments": "{}"}}]},
     {"role": "tool", "tool_call_id": "c1", "content": "card 4111 1111 1111 1111"},
     {"role": "user", "content": "Explain quantum chromodynamics."}],
    [{"role": "user", "content": [{"type": "text", "text": "IBAN DE89 3704 0044 0532 0130 00"},
                                  {"type": "text", "text": " Explain chromodynamics."}]}],
])
def test_personal_data_anywhere_in_the_request_stays_local(messages):
    """Not only the last user message: system prompt, earlier turns, tool results and
    content parts all leave with the request."""
    d = group(threshold=-100.0).decide(chat(messages), False)[0]
    assert d.member == "weak" and d.reason.startswith("residency:")


def test_policies_in_order():
    g = group(threshold=-100.0)  # the score alone would send everything strong
    assert g.decide(req("email bob@corp.io the answer"), False)[0].reason == "residency:email"
    assert g.decide(req("hello"), True)[0].member == "weak"  # tagged sensitive
    img = [{"type": "text", "text": "what is this"},
           {"type": "image_url", "image_url": {"url": "http://x/y.png"}}]
    assert g.decide(req(img), False)[0].reason == "images"
    assert g.decide(req("word " * 2000), False)[0].reason == "context"
    assert g.decide(req(""), False)[0].reason == "empty"
    d = g.decide(req("Explain quantum chromodynamics."), False)[0]
    assert d.member == "strong" and d.reason == "score" and d.score is not None


def test_no_local_member_refuses_sensitive():
    g = RoutedGroup(RouteGroup(name="auto", weak="gpt", strong="gpt2"), REMOTE, frozenset())
    with pytest.raises(ResidencyViolation):
        g.decide(req("my card is 4111111111111111"), False)


def test_router_file_errors(tmp_path):
    from hybridgate.routing.router import RouterFileError
    with pytest.raises(RouterFileError):
        group(router=str(tmp_path / "missing.npz"))
    g = group(router=str(tmp_path / "missing.npz"), on_router_error="default",
              default="strong")
    assert g.decide(req("hi there"), False)[0] .reason == "default"


def test_strong_share_threshold_is_calibrated():
    assert group(strong_share=0.1).threshold > group(strong_share=0.5).threshold


def test_tenant_allowlist_narrows_the_group():
    g = group(threshold=-100.0)  # the score alone would send everything strong
    only_local = frozenset({"local"})
    d = g.decide(req("Explain quantum chromodynamics."), False, only_local)[0]
    assert (d.member, d.reason) == ("weak", "allowlist")
    # residency outranks the allowlist, but only among allowed members
    assert g.decide(req("mail bob@corp.io"), False, only_local)[0].reason == "residency:email"
    with pytest.raises(ResidencyViolation):
        g.decide(req("mail bob@corp.io"), False, frozenset({"gpt"}))
    d = g.decide(req("hello"), False, frozenset({"gpt"}))[0]
    assert (d.member, d.reason) == ("strong", "allowlist")
    from hybridgate.core.errors import ModelNotAllowed
    with pytest.raises(ModelNotAllowed):
        g.decide(req("hello"), False, frozenset({"other"}))
