"""GET /metrics: Prometheus text that counts what the ledger records (requests, errors,
tokens, cost, latency, time to first token, route decisions, attempts, fallbacks,
breakers, the local queue), added up across --workers, behind an admin key."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families

from hybridgate.config.settings import BreakerConfig
from hybridgate.execute.breaker import PROBE, Breaker
from hybridgate.observe.metrics import Metrics
from tests.conftest import OPENAI_KEY
from tests.ledger.helpers import GatewayProcess

HI = [{"role": "user", "content": "count me"}]


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(found: dict, name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in found.items() if n == name and want <= ls)


def scrape(url: str, **headers: str) -> dict:
    r = requests.get(url + "/metrics", headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return samples(r.text)


def test_a_request_is_counted_with_its_tokens_cost_and_latency(gateway, client):
    before = scrape(gateway.url)
    client.chat.completions.create(model="gpt-fake", messages=HI)
    after = scrape(gateway.url)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("hybridgate_requests_total", model="gpt-fake", status="200") == 1
    assert delta("hybridgate_tokens_total", model="gpt-fake", type="input") > 0
    assert delta("hybridgate_tokens_total", model="gpt-fake", type="output") > 0
    assert delta("hybridgate_cost_usd_total", model="gpt-fake") > 0
    assert delta("hybridgate_baseline_cost_usd_total", model="gpt-fake") > 0
    assert delta("gen_ai_client_operation_duration_seconds_count",
                 gen_ai_response_model="gpt-fake", gen_ai_operation_name="chat") == 1
    assert delta("gen_ai_client_token_usage_count", gen_ai_token_type="output",
                 gen_ai_response_model="gpt-fake") == 1
    assert delta("hybridgate_attempts_total", model="gpt-fake", outcome="ok") == 1


def test_streams_errors_routes_and_fallbacks_are_counted(gateway, client):
    before = scrape(gateway.url)
    list(client.chat.completions.create(model="gpt-fake", messages=HI, stream=True))
    try:
        client.chat.completions.create(model="down", messages=HI)
    except Exception:
        pass
    client.chat.completions.create(model="gpt-with-fallback", messages=HI)
    after = scrape(gateway.url)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("gen_ai_client_operation_time_to_first_chunk_seconds_count",
                 gen_ai_response_model="gpt-fake") >= 1
    assert delta("hybridgate_errors_total", model="down") == 1
    assert delta("hybridgate_requests_total", model="down", status="502") + \
        delta("hybridgate_requests_total", model="down", status="503") == 1
    assert delta("hybridgate_fallbacks_total", from_model="gpt-with-fallback",
                 to_model="gpt-fake") == 1
    failed = {ls for (n, ls) in after if n == "hybridgate_attempts_total"
              and ("model", "gpt-with-fallback") in ls and ("outcome", "ok") not in ls}
    assert failed and sum(delta("hybridgate_attempts_total", **dict(ls)) for ls in failed) >= 1


def test_route_decisions_are_counted(gateway, client):
    before = scrape(gateway.url)
    client.chat.completions.create(model="smart", messages=HI, max_tokens=2)
    after = scrape(gateway.url)
    assert value(after, "hybridgate_route_decisions_total", group="smart") - \
        value(before, "hybridgate_route_decisions_total", group="smart") == 1


def test_breaker_state_and_local_queue_reach_the_gauges():
    m = Metrics()
    changes: list[bool] = []
    b = Breaker(BreakerConfig(failure_ratio=0.5, window=10, min_requests=2, cooldown=1),
                lambda open_: (changes.append(open_), m.breaker_state("up", open_)))
    b.note(False, now=0)
    b.note(False, now=1)
    assert changes == [True]
    assert value(samples(m.scrape()[0].decode()), "hybridgate_breaker_open", model="up") == 1
    assert b.ticket(now=3) == PROBE
    b.note(True, PROBE, now=3)
    assert changes == [True, False]
    assert value(samples(m.scrape()[0].decode()), "hybridgate_breaker_open", model="up") == 0
    gauge = m.queue_gauge("local-a")
    gauge.inc()
    gauge.inc()
    m.local_speed("local-a", 40, 2.0)
    found = samples(m.scrape()[0].decode())
    assert value(found, "hybridgate_local_queue_depth", model="local-a") == 2
    assert value(found, "hybridgate_local_tokens_per_second", model="local-a") == 20


def test_workers_add_up_and_metrics_need_an_admin_key(tmp_path, fake_openai):
    admin, user = "hg-admin-key-0000000000", "hg-user-key-00000000000"
    cfg = {"ledger": {"url": f"sqlite:///{tmp_path / 'ledger.db'}"},
           "keys": [{"id": "ops", "key": admin, "admin": True}, {"id": "app", "key": user}],
           "models": [{"name": "gpt-fake", "provider": "openai",
                       "base_url": fake_openai.url + "/v1", "api_key": OPENAI_KEY}]}
    gw = GatewayProcess(tmp_path, fake_openai.url, {}, workers=2, config=cfg)
    try:
        gw.wait()
        assert requests.get(gw.url + "/metrics", timeout=10).status_code == 401
        r = requests.get(gw.url + "/metrics", timeout=10,
                         headers={"authorization": f"Bearer {user}"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"
        for _ in range(20):
            r = requests.post(gw.url + "/v1/chat/completions", timeout=10, json={
                "model": "gpt-fake", "messages": HI},
                headers={"authorization": f"Bearer {user}"})
            assert r.status_code == 200
        for _ in range(4):  # whichever worker answers the scrape sees all 20
            found = scrape(gw.url, authorization=f"Bearer {admin}")
            assert value(found, "hybridgate_requests_total", model="gpt-fake") == 20
    finally:
        gw.stop()


def test_metrics_can_be_turned_off(tmp_path, fake_openai):
    cfg = {"server": {"metrics": False}, "ledger": {"enabled": False},
           "models": [{"name": "gpt-fake", "provider": "openai",
                       "base_url": fake_openai.url + "/v1", "api_key": OPENAI_KEY}]}
    gw = GatewayProcess(tmp_path, fake_openai.url, {}, config=cfg)
    try:
        gw.wait()
        assert requests.get(gw.url + "/metrics", timeout=10).status_code == 404
    finally:
        gw.stop()
