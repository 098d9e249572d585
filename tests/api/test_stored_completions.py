"""Stored chat completions (``store: true``) through the official `openai` SDK: kept in
the ledger's database, listed, read, their metadata updated, deleted; streamed answers
kept too; never sent upstream; only for callers whose tenant allows it."""

from __future__ import annotations

import openai
import pytest
import requests

from tests.ledger.helpers import GatewayProcess

HI = [{"role": "user", "content": "hello store"}]


def test_a_stored_completion_can_be_read_listed_updated_and_deleted(client, fake_openai):
    done = client.chat.completions.create(model="gpt-fake", messages=HI, store=True,
                                          metadata={"team": "blue"})
    sent = fake_openai.requests[-1]["body"]
    assert "store" not in sent and "metadata" not in sent
    got = client.chat.completions.retrieve(done.id)
    assert got.id == done.id and got.choices[0].message.content == "echo: hello store"
    assert got.metadata == {"team": "blue"}
    listed = client.chat.completions.list(metadata={"team": "blue"}, limit=100)
    assert done.id in [c.id for c in listed.data]
    msgs = client.chat.completions.messages.list(done.id)
    assert [(m.role, m.content) for m in msgs.data] == [("user", "hello store")]
    updated = client.chat.completions.update(done.id, metadata={"team": "red"})
    assert updated.metadata == {"team": "red"}
    assert done.id not in [c.id for c in client.chat.completions.list(
        metadata={"team": "blue"}, limit=100).data]
    deleted = client.chat.completions.delete(done.id)
    assert deleted.deleted is True and deleted.id == done.id
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.retrieve(done.id)


def test_listing_pages_in_order(client):
    ids = [client.chat.completions.create(model="gpt-fake", messages=HI, store=True,
                                          metadata={"run": "paging"}).id for _ in range(3)]
    first = client.chat.completions.list(metadata={"run": "paging"}, limit=2)
    assert [c.id for c in first.data] == ids[:2] and first.has_more
    rest = client.chat.completions.list(metadata={"run": "paging"}, limit=2,
                                        after=first.data[-1].id)
    assert [c.id for c in rest.data] == ids[2:] and not rest.has_more
    newest = client.chat.completions.list(metadata={"run": "paging"}, order="desc")
    assert [c.id for c in newest.data] == ids[::-1]
    auto = [c.id for c in client.chat.completions.list(metadata={"run": "paging"}, limit=1)]
    assert auto == ids  # the SDK's auto-paging follows has_more / after


def test_a_streamed_answer_is_stored_whole(client):
    stream = client.chat.completions.create(model="gpt-fake", messages=HI, store=True,
                                            stream=True, metadata={"kind": "stream"})
    chunks = list(stream)
    cid = chunks[0].id
    got = client.chat.completions.retrieve(cid)
    assert got.choices[0].message.content == "echo: hello store"
    assert got.choices[0].finish_reason == "stop"


def test_without_store_nothing_is_kept(client):
    done = client.chat.completions.create(model="gpt-fake", messages=HI)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.retrieve(done.id)


def test_bad_metadata_and_unknown_ids_are_clear_errors(gateway, client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="gpt-fake", messages=HI, store=True,
                                       metadata={"k": 1})
    assert e.value.body["param"] == "metadata"
    r = requests.get(gateway.url + "/v1/chat/completions?limit=0", timeout=10)
    assert r.status_code == 400 and r.json()["error"]["param"] == "limit"
    r = requests.get(gateway.url + "/v1/chat/completions?after=nope", timeout=10)
    assert r.status_code == 400 and r.json()["error"]["param"] == "after"
    r = requests.post(gateway.url + "/v1/chat/completions/nope",
                      json={"metadata": {}}, timeout=10)
    assert r.status_code == 404 and "error" in r.json()


def test_only_the_owning_tenant_reads_and_only_where_storing_is_on(tmp_path, fake_openai):
    keys = {"a": "hg-key-a-000000000000", "b": "hg-key-b-000000000000",
            "c": "hg-key-c-000000000000"}
    cfg = {"ledger": {"url": f"sqlite:///{tmp_path / 'ledger.db'}"},
           "tenants": [{"name": "a", "store": True}, {"name": "b", "store": True},
                       {"name": "c"}],
           "keys": [{"id": k, "key": v, "tenant": k} for k, v in keys.items()],
           "models": [{"name": "gpt-fake", "provider": "openai",
                       "base_url": fake_openai.url + "/v1", "api_key": "sk-fake-openai-test-key"}]}
    gw = GatewayProcess(tmp_path, fake_openai.url, {}, config=cfg)
    try:
        gw.wait()
        ca, cb, cc = (openai.OpenAI(base_url=gw.url + "/v1", api_key=keys[t], max_retries=0)
                      for t in "abc")
        done = ca.chat.completions.create(model="gpt-fake", messages=HI, store=True)
        assert ca.chat.completions.retrieve(done.id).id == done.id
        with pytest.raises(openai.NotFoundError):
            cb.chat.completions.retrieve(done.id)
        with pytest.raises(openai.NotFoundError):
            cb.chat.completions.delete(done.id)
        assert cb.chat.completions.list().data == []
        # tenant c has not opted in: answered, not kept
        kept_not = cc.chat.completions.create(model="gpt-fake", messages=HI, store=True)
        with pytest.raises(openai.NotFoundError):
            cc.chat.completions.retrieve(kept_not.id)
        resp = cc.responses.create(model="gpt-fake", input="hi")
        assert resp.store is False
        with pytest.raises(openai.BadRequestError):
            cc.responses.create(model="gpt-fake", input="x", previous_response_id=resp.id)
    finally:
        gw.stop()
