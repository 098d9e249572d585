"""Personal data under a tenant's `pii:` mode: found in linear time, pseudonymized on the
way out and restored on the way back (whole answers, streams with placeholders split
across chunks, tool-call arguments), redacted, blocked, or kept local; every dialect,
the Anthropic passthrough included, and counts (never values) in the audit record."""

from __future__ import annotations

import json
import sqlite3
import time

import anthropic
import openai
import pytest

from hybridgate.config.settings import parse_config
from hybridgate.core.types import ChatChunk, ChatRequest, ChunkChoice, Delta, Message
from hybridgate.guard.pii import find
from hybridgate.guard.scrub import Pseudonyms
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY, start_gateway

TEXT = ("Write to jane.doe@example.com or call +44 20 7946 0958; card 4111 1111 1111 1111, "
        "IBAN GB82 WEST 1234 5698 7654 32, SSN 078-05-1120, host 192.168.10.7.")
KINDS = {"EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS"}


def test_every_structured_identifier_is_found_and_lookalikes_are_not():
    assert {f.kind for f in find(TEXT)} == KINDS
    assert not find("order 4111 1111 1111 1112 (bad checksum), IBAN GB82 WEST 1234 5698 "
                    "7654 33, version 1.2.3.4.5, the year 2024")


@pytest.mark.parametrize(("text", "kind", "value"), [
    ("host c8d5:7717:9055:a36f:4aa5:f9d4:335f:2f59 is down", "IP_ADDRESS",
     "c8d5:7717:9055:a36f:4aa5:f9d4:335f:2f59"),
    ("ping 2001:db8::8a2e:370:7334 now", "IP_ADDRESS", "2001:db8::8a2e:370:7334"),
    ("my Maestro card 501803075628 was lost", "CREDIT_CARD", "501803075628"),
    ("Can someone call me on 76 177 296?", "PHONE_NUMBER", "76 177 296"),
    ("Fax: (07700)553419", "PHONE_NUMBER", "(07700)553419"),
    ("650-752-7354x549 mobile", "PHONE_NUMBER", "650-752-7354x549"),
    ("+447700556093 mobile", "PHONE_NUMBER", "+447700556093"),
    ("stop sending messages to 06-54088297", "PHONE_NUMBER", "06-54088297"),
    (r'{"note": "Phone:\n439 4166"}', "PHONE_NUMBER", "439 4166"),  # an escaped break
])
def test_identifiers_in_less_common_shapes(text, kind, value):
    assert [(f.kind, f.value) for f in find(text)] == [(kind, value)]


@pytest.mark.parametrize("text", [
    "std::vector and a::b in C++", "the meeting is at 10:30:45", "order 123456 shipped",
    "order number 123456 is at home since 2024 1999",
    "we sold 1500 units in 2024",
    "invoice 401803075621 is due",  # Luhn-valid, 12 digits, not a 5 or 6 first
    "the 76 177 296 figure in the report",  # digit groups with no phone word nearby
])
def test_lookalikes_of_those_shapes_are_not_identifiers(text):
    assert find(text) == []


@pytest.mark.parametrize("adversarial", ["1-" * 500_000, "a@" * 500_000, "1 " * 500_000,
                                         "GB82 " * 200_000, "9." * 500_000,
                                         "12 " * 333_334, "call 12 34 " * 90_910,
                                         "ab:" * 333_334, "fe80::" * 166_667])
def test_a_megabyte_of_adversarial_text_scans_in_linear_time(adversarial):
    t0 = time.perf_counter()
    find(adversarial[:1_000_000])
    assert time.perf_counter() - t0 < 3.0


def _req(text: str) -> ChatRequest:
    return ChatRequest(model="m", messages=[Message(role="user", content=text)])


def test_pseudonyms_are_numbered_per_value_and_restored():
    p = Pseudonyms("pseudonymize")
    out = p.request(_req("a@b.co and c@d.co, again a@b.co")).messages[0].content
    assert out == "<EMAIL_ADDRESS_1> and <EMAIL_ADDRESS_2>, again <EMAIL_ADDRESS_1>"
    assert p.restore("to <EMAIL_ADDRESS_2>!") == "to c@d.co!"
    assert p.restore_json('{"to": "<EMAIL_ADDRESS_1>"}') == '{"to": "a@b.co"}'
    assert p.restore("<EMAIL_ADDRESS_9> is unknown") == "<EMAIL_ADDRESS_9> is unknown"
    assert dict(p.counts) == {"EMAIL_ADDRESS": 3}


async def _nothing():  # noqa: ANN202
    return
    yield


def test_a_placeholder_split_across_chunks_is_restored_whole():
    p = Pseudonyms("pseudonymize")
    p.request(_req("mail x@y.org"))
    pieces = ["Sure, ", "I will mail <EM", "AIL_ADD", "RESS_", "1", ">", " today <", "3"]
    chunks = [ChatChunk(id="c", created=0, model="m", choices=[
        ChunkChoice(index=0, delta=Delta(content=s),
                    finish_reason="stop" if i == len(pieces) - 1 else None)])
        for i, s in enumerate(pieces)]
    out, _ = p.stream(chunks, _nothing())
    said = [c.choices[0].delta.content for c in out]
    assert "".join(said) == "Sure, I will mail x@y.org today <3"
    assert said[1] == "I will mail "  # held back only what may be a placeholder
    assert said[5] == "x@y.org"
    quiet = Pseudonyms("pseudonymize")
    quiet.request(_req("nothing personal"))
    rest = _nothing()
    assert quiet.stream(chunks, rest) == (chunks, rest)  # nothing to restore: untouched


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, fake_openai, fake_anthropic):
    db = tmp_path_factory.mktemp("pii") / "ledger.db"
    keys = {m: f"hg-pii-{m}-key-000000000"[:24] for m in
            ("pseudonymize", "redact", "block", "local", "detect")}
    gw = start_gateway(parse_config({
        "ledger": {"url": f"sqlite:///{db}"},
        "tenants": [{"name": m, "pii": m} for m in keys],
        "keys": [{"id": m, "key": k, "tenant": m} for m, k in keys.items()],
        "models": [{"name": "gpt-fake", "provider": "openai", "api_key": OPENAI_KEY,
                    "base_url": fake_openai.url + "/v1"},
                   {"name": "claude-fake", "provider": "anthropic", "api_key": ANTHROPIC_KEY,
                    "base_url": fake_anthropic.url, "model": "claude-sonnet-4-5"}]}))
    yield gw, keys, db
    gw.stop()


def _client(gw, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key=key, max_retries=0)


def _sent(fake) -> str:  # noqa: ANN001
    return json.dumps(fake.requests[-1]["body"])


def test_pseudonymized_out_and_restored_back(guarded, fake_openai):
    gw, keys, _ = guarded
    c = _client(gw, keys["pseudonymize"])
    r = c.chat.completions.create(model="gpt-fake", messages=[{"role": "user",
                                                                "content": TEXT}])
    sent = _sent(fake_openai)
    assert "jane.doe@example.com" not in sent and "4111" not in sent
    assert "<EMAIL_ADDRESS_1>" in sent and "<CREDIT_CARD_1>" in sent
    assert r.choices[0].message.content == f"echo: {TEXT}"  # the real values, back
    stream = c.chat.completions.create(model="gpt-fake", stream=True, messages=[
        {"role": "user", "content": TEXT}])
    assert "".join(ch.choices[0].delta.content or "" for ch in stream
                   if ch.choices) == f"echo: {TEXT}"
    # a tool call's arguments, JSON-escaped
    fake_openai.tool_arguments = json.dumps({"to": "<EMAIL_ADDRESS_1>"})
    r = c.chat.completions.create(model="gpt-fake", tool_choice="required", messages=[
        {"role": "user", "content": "mail jane.doe@example.com"}], tools=[{
            "type": "function", "function": {"name": "send", "parameters": {
                "type": "object", "properties": {"to": {"type": "string"}}}}}])
    assert json.loads(r.choices[0].message.tool_calls[0].function.arguments) == {
        "to": "jane.doe@example.com"}


def test_a_persons_name_is_pseudonymized_and_restored(guarded, fake_openai):
    gw, keys, _ = guarded
    text = "Could you forward the minutes to Ingrid Halvorsen before noon?"
    r = _client(gw, keys["pseudonymize"]).chat.completions.create(
        model="gpt-fake", messages=[{"role": "user", "content": text}])
    sent = _sent(fake_openai)
    assert "Halvorsen" not in sent and "<PERSON_1>" in sent
    assert r.choices[0].message.content == f"echo: {text}"


def test_pii_names_false_finds_identifiers_only():
    from hybridgate.pipeline import Pipeline

    base = {"tenants": [{"name": "t", "pii": "redact"}],
            "models": [{"name": "gpt-fake", "provider": "openai", "api_key": OPENAI_KEY,
                        "base_url": "http://127.0.0.1:9/v1"}]}
    assert Pipeline(parse_config(base)).pii_names
    assert not Pipeline(parse_config({**base, "pii_names": False})).pii_names
    assert not Pipeline(parse_config({**base, "tenants": [{"name": "t"}]})).pii_names
    p = Pseudonyms("redact", names=False)
    assert p.scrub("Ingrid Halvorsen, ingrid@example.com") == \
        "Ingrid Halvorsen, <EMAIL_ADDRESS>"


def test_the_names_model_is_chosen_in_config():
    import asyncio

    from hybridgate.config.settings import ConfigError
    from hybridgate.guard import names
    from hybridgate.pipeline import Pipeline

    base = {"tenants": [{"name": "t", "pii": "redact"}], "ledger": {"enabled": False},
            "models": [{"name": "gpt-fake", "provider": "openai", "api_key": OPENAI_KEY,
                        "base_url": "http://127.0.0.1:9/v1"}]}
    assert Pipeline(parse_config(base)).names_reader == "encoder"  # the default
    small = Pipeline(parse_config({**base, "pii_names_model": "small"}))

    async def start_and_close() -> None:
        await small.start()
        await small.close()

    try:
        asyncio.run(start_and_close())
        assert names._reader == "small"
    finally:
        names.use("encoder")
    with pytest.raises(ConfigError, match="pii_names_model"):
        parse_config({**base, "pii_names_model": "large"})


def test_the_anthropic_passthrough_is_scrubbed_too(guarded, fake_anthropic):
    gw, keys, _ = guarded
    claude = anthropic.Anthropic(base_url=gw.url, api_key=keys["pseudonymize"],
                                 max_retries=0)
    msg = claude.messages.create(model="claude-fake", max_tokens=64, messages=[
        {"role": "user", "content": "reach me at jane.doe@example.com"}])
    assert "jane.doe" not in _sent(fake_anthropic)
    assert msg.content[0].text == "echo: reach me at jane.doe@example.com"


def test_redact_block_local_and_detect(guarded, fake_openai):
    gw, keys, db = guarded
    r = _client(gw, keys["redact"]).chat.completions.create(
        model="gpt-fake", messages=[{"role": "user", "content": TEXT}])
    assert "<EMAIL_ADDRESS>" in r.choices[0].message.content  # gone for good
    assert "jane.doe" not in _sent(fake_openai)
    before = len(fake_openai.requests)
    with pytest.raises(openai.BadRequestError) as e:
        _client(gw, keys["block"]).chat.completions.create(
            model="gpt-fake", messages=[{"role": "user", "content": TEXT}])
    assert e.value.body["code"] == "pii_blocked" and "CREDIT_CARD" in e.value.body["message"]
    with pytest.raises(openai.PermissionDeniedError):  # remote model, data must stay local
        _client(gw, keys["local"]).chat.completions.create(
            model="gpt-fake", messages=[{"role": "user", "content": TEXT}])
    assert len(fake_openai.requests) == before  # nothing left
    assert _client(gw, keys["local"]).chat.completions.create(  # no personal data: fine
        model="gpt-fake", messages=[{"role": "user", "content": "hello"}]).choices
    raw = _client(gw, keys["detect"]).chat.completions.with_raw_response.create(
        model="gpt-fake", messages=[{"role": "user", "content": TEXT}])
    assert "jane.doe@example.com" in _sent(fake_openai)  # detect: counted, not changed
    time.sleep(0.2)
    with sqlite3.connect(db) as c:
        body = c.execute("SELECT body FROM audit WHERE request_id = ?",
                         (raw.headers["x-request-id"],)).fetchone()[0]
    policy = json.loads(json.loads(body)["policy"])
    assert policy["pii_mode"] == "detect" and set(policy["pii"]) == KINDS
    assert "jane.doe" not in body


def _post_while_polling_healthz(gw, key: str, text: str) -> tuple[dict, float, int]:  # noqa: ANN001
    """POST ``text`` as a chat message and poll /healthz until it is answered: (the
    answer's status and body, the slowest /healthz, how many polls)."""
    import threading

    import requests

    result: dict[str, object] = {}

    def post() -> None:
        r = requests.post(gw.v1 + "/chat/completions", timeout=120,
                          headers={"authorization": f"Bearer {key}"},
                          json={"model": "gpt-fake",
                                "messages": [{"role": "user", "content": text}]})
        result["status"], result["body"] = r.status_code, r.json()

    worker = threading.Thread(target=post)
    worker.start()
    worst, polls = 0.0, 0
    while worker.is_alive():
        t0 = time.perf_counter()
        assert requests.get(gw.url + "/healthz", timeout=10).status_code == 200
        worst, polls = max(worst, time.perf_counter() - t0), polls + 1
        time.sleep(0.02)
    worker.join()
    return result, worst, polls


def test_a_hostile_megabyte_is_scrubbed_off_the_event_loop(guarded, fake_openai):
    """1 MB of digit and dash runs (near-misses for phone and card patterns) with one
    real address: pseudonymized in linear time on a worker thread while /healthz keeps
    answering, and the address comes back in the answer."""
    gw, keys, _ = guarded
    text = ("1-" * 250_000) + " write to jane.doe@example.com " + ("4 " * 240_000)
    result, worst, _ = _post_while_polling_healthz(gw, keys["pseudonymize"], text)
    assert result["status"] == 200, result
    assert "jane.doe@example.com" not in _sent(fake_openai)
    assert "jane.doe@example.com" in result["body"]["choices"][0]["message"]["content"]
    assert worst < 1.0, f"/healthz waited {worst:.2f} s behind the scan"


def test_names_in_a_long_body_are_read_off_the_event_loop(guarded, fake_openai):
    """60 kB of distinct sentences with names (under the 64 kB off-loop bound for the
    patterns): the names model reads it on a worker thread while /healthz answers."""
    gw, keys, _ = guarded
    text = " ".join(f"Ticket {i}: Ingrid Halvorsen asked Tomasz Wieczorek about the "
                    f"invoice for order {i}." for i in range(800))[:60_000]
    result, worst, polls = _post_while_polling_healthz(gw, keys["redact"], text)
    assert result["status"] == 200, result
    assert "Halvorsen" not in _sent(fake_openai)
    assert polls > 3  # the read took a while, and the loop answered throughout
    assert worst < 0.5, f"/healthz waited {worst:.2f} s behind the names model"
