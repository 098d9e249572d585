"""Gateway keys and tenant allowlists: unit checks of the key table, then a real gateway
(two remote models on the fake OpenAI upstream) driven by the openai SDK."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator

import openai
import pytest
import requests

from hybridgate.config.settings import ConfigError, parse_config
from hybridgate.core.errors import AuthenticationFailed
from hybridgate.gate.auth import ANONYMOUS, KeyTable, digest, new_key
from tests.conftest import OPENAI_KEY, Gateway, start_gateway
from tests.fakes.openai_upstream import FakeOpenAI

ADMIN = "hg-admin-secret-0123456789"
TEAM = new_key()


def _config(fake_url: str, ledger: str) -> dict:
    return {
        "ledger": {"url": ledger},
        "models": [
            {"name": "cheap", "provider": "openai", "base_url": fake_url,
             "api_key": OPENAI_KEY},
            {"name": "frontier", "provider": "openai", "base_url": fake_url,
             "api_key": OPENAI_KEY},
        ],
        # threshold far below any score: every scored request goes strong
        "routes": [{"name": "auto", "weak": "cheap", "strong": "frontier",
                    "threshold": -1e9}],
        "tenants": [{"name": "interns", "models": ["cheap"]}],
        "keys": [{"id": "admin", "key": "${TEST_ADMIN_KEY}"},
                 {"id": "intern-1", "key_sha256": digest(TEAM), "tenant": "interns"}],
    }


# ------------------------------------------------------------------ the key table


def test_key_table_accepts_bearer_and_x_api_key_and_refuses_the_rest(monkeypatch):
    monkeypatch.setenv("TEST_ADMIN_KEY", ADMIN)
    table = KeyTable(parse_config(_config("http://127.0.0.1:9/v1", "sqlite:///:memory:")))
    admin = table.authenticate(f"Bearer {ADMIN}")
    assert (admin.key_id, admin.tenant, admin.allowed) == ("admin", None, None)
    intern = table.authenticate(None, TEAM)
    assert intern.key_id == "intern-1" and intern.allowed == frozenset({"cheap"})
    assert table.authenticate(f"bearer   {TEAM}  ").key_id == "intern-1"
    for header, api_key in [(None, None), ("Bearer ", None), (f"Basic {ADMIN}", None),
                            (f"Bearer {ADMIN}x", None), (None, "sk-wrong")]:
        with pytest.raises(AuthenticationFailed):
            table.authenticate(header, api_key)


def test_no_keys_means_no_auth():
    table = KeyTable(parse_config({}))
    assert not table.enabled and table.authenticate(None) is ANONYMOUS


@pytest.mark.parametrize(("change", "message"), [
    ({"keys": [{"id": "a"}]}, "exactly one of key or key_sha256"),
    ({"keys": [{"id": "a", "key": "short"}]}, "at least 16"),
    ({"keys": [{"id": "a", "key_sha256": "abc"}]}, "64 hex digits"),
    ({"keys": [{"id": "a", "key": ADMIN, "tenant": "nobody"}]}, "tenant 'nobody'"),
    ({"keys": [{"id": "a", "key": ADMIN}, {"id": "a", "key": ADMIN + "2"}]}, "duplicate key"),
    ({"tenants": [{"name": "t", "models": ["gpt-9"]}]}, "'gpt-9' not in models"),
    ({"tenants": [{"name": "t", "models": ["auto"]}]}, "not route groups"),
])
def test_bad_access_config_names_the_problem(monkeypatch, change, message):
    monkeypatch.setenv("TEST_ADMIN_KEY", ADMIN)
    doc = {**_config("http://127.0.0.1:9/v1", "sqlite:///:memory:"), **change}
    with pytest.raises(ConfigError, match=message):
        parse_config(doc)


def test_two_keys_with_one_secret_are_refused(monkeypatch):
    monkeypatch.setenv("TEST_ADMIN_KEY", ADMIN)
    doc = _config("http://127.0.0.1:9/v1", "sqlite:///:memory:")
    doc["keys"].append({"id": "copy", "key_sha256": digest(ADMIN)})
    with pytest.raises(ValueError, match="same secret"):
        KeyTable(parse_config(doc))


# ------------------------------------------------------------------ through the gateway


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, str]]:
    os.environ["TEST_ADMIN_KEY"] = ADMIN
    fake = FakeOpenAI().start()
    fake.api_key = OPENAI_KEY
    db = tmp_path_factory.mktemp("auth") / "ledger.db"
    gw = start_gateway(parse_config(_config(fake.url + "/v1", f"sqlite:///{db}")))
    yield gw, str(db)
    gw.stop()
    fake.stop()


def sdk(gw: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key=key, max_retries=0)


MSG = [{"role": "user", "content": "What is the capital of France?"}]


def test_missing_or_wrong_key_is_401_in_openai_shape(keyed):
    gw, _ = keyed
    r = requests.post(gw.v1 + "/chat/completions", json={"model": "auto", "messages": MSG})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        sdk(gw, "sk-not-a-key").chat.completions.create(model="auto", messages=MSG)
    with pytest.raises(openai.AuthenticationError):
        sdk(gw, "sk-not-a-key").models.list()
    assert requests.get(gw.url + "/healthz").status_code == 200  # probes need no key


def test_admin_is_routed_by_score_and_intern_by_allowlist(keyed):
    gw, db = keyed
    admin = sdk(gw, ADMIN).chat.completions.with_raw_response.create(
        model="auto", messages=MSG, max_tokens=5)
    assert admin.headers["x-hybridgate-model"] == "frontier"
    assert admin.headers["x-hybridgate-route"].startswith("strong; reason=score")
    intern = sdk(gw, TEAM).chat.completions.with_raw_response.create(
        model="auto", messages=MSG, max_tokens=5)
    assert intern.headers["x-hybridgate-model"] == "cheap"
    assert intern.headers["x-hybridgate-route"] == "weak; reason=allowlist"
    assert intern.parse().choices[0].message.content
    with sqlite3.connect(db) as conn:
        rows = dict(conn.execute("SELECT id, key_id FROM requests").fetchall())
    assert rows[admin.headers["x-request-id"]] == "admin"
    assert rows[intern.headers["x-request-id"]] == "intern-1"


def test_pinned_model_outside_the_allowlist_is_403(keyed):
    gw, _ = keyed
    with pytest.raises(openai.PermissionDeniedError) as e:
        sdk(gw, TEAM).chat.completions.create(model="frontier", messages=MSG)
    assert e.value.body["code"] == "model_not_allowed"
    assert sdk(gw, ADMIN).chat.completions.create(model="frontier", messages=MSG).choices


def test_model_list_shows_only_what_the_key_may_use(keyed):
    gw, _ = keyed
    assert {m.id for m in sdk(gw, ADMIN).models.list()} == {"cheap", "frontier", "auto"}
    assert {m.id for m in sdk(gw, TEAM).models.list()} == {"cheap", "auto"}
    with pytest.raises(openai.NotFoundError):
        sdk(gw, TEAM).models.retrieve("frontier")
    assert sdk(gw, ADMIN).models.retrieve("frontier").id == "frontier"


def test_feedback_only_on_your_own_requests(keyed):
    gw, _ = keyed
    rid = sdk(gw, TEAM).chat.completions.with_raw_response.create(
        model="auto", messages=MSG, max_tokens=3).headers["x-request-id"]
    body = {"request_id": rid, "preferred_route": "strong"}
    other = requests.post(gw.v1 + "/feedback", json=body,
                          headers={"authorization": f"Bearer {ADMIN}"})
    assert other.status_code == 404
    own = requests.post(gw.v1 + "/feedback", json=body, headers={"x-api-key": TEAM})
    assert own.status_code == 200


def test_the_messages_api_takes_x_api_key_and_the_same_rules(keyed):
    """The anthropic SDK sends x-api-key: same keys, same allowlists, Anthropic's shape."""
    import anthropic

    gw, _ = keyed

    def claude(key: str) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0)

    body = {"max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    assert claude(ADMIN).messages.create(model="frontier", **body).content[0].text
    with pytest.raises(anthropic.AuthenticationError) as e:
        claude("sk-not-a-key").messages.create(model="frontier", **body)
    assert e.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.PermissionDeniedError) as e:
        claude(TEAM).messages.create(model="frontier", **body)  # outside the interns' list
    assert e.value.body["error"]["type"] == "permission_error"
