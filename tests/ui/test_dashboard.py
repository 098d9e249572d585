"""The dashboard (/ui) in a real browser: Playwright for Python driving Debian's
Chromium against a gateway process with real traffic in its ledger (SQLite, and
Postgres). Charts render with data, the request log drills down to a request's
attempts, and only an admin key gets in."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import requests
from playwright.sync_api import sync_playwright

from tests.conftest import OPENAI_KEY
from tests.ledger.helpers import GatewayProcess, pg_schema

ADMIN, USER = "hg-admin-key-dashboard-0", "hg-user-key-dashboard-00"
DOCS = Path(__file__).parents[2] / "docs"


def _config(fake_url: str, ledger_url: str) -> dict:
    return {"ledger": {"url": ledger_url},
            "prices": [{"id": "gpt-fake", "input": 1.0, "output": 2.0}],
            "redis": "redis://127.0.0.1:6379/0",
            "tenants": [{"name": "team-a", "max_budget_usd": 25.0, "budget_period": "30d",
                         "rpm_limit": 600}],
            "keys": [{"id": "ops", "key": ADMIN, "admin": True},
                     {"id": "app", "key": USER, "tenant": "team-a"}],
            "models": [{"name": "gpt-fake", "provider": "openai", "base_url": fake_url + "/v1",
                        "api_key": OPENAI_KEY},
                       {"name": "gpt-flaky", "provider": "openai", "num_retries": 0,
                        "base_url": "http://127.0.0.1:9/v1", "fallbacks": ["gpt-fake"]}]}


def _traffic(url: str) -> None:
    auth = {"authorization": f"Bearer {USER}"}
    for model in ["gpt-fake"] * 5 + ["gpt-flaky"]:
        r = requests.post(url + "/v1/chat/completions", headers=auth, timeout=10, json={
            "model": model, "messages": [{"role": "user", "content": "hello <b>there</b>"}]})
        assert r.status_code == 200, r.text


def _browser(p):  # noqa: ANN001
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium package is needed (.ci/run installs it)"
    return p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])


def _check_dashboard(gw: GatewayProcess, screenshot: Path | None = None) -> None:
    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.goto(gw.url + "/ui")
            assert "/ui/login" in page.url  # no session: the sign-in page
            page.fill("input[name=key]", USER)
            page.click("button[type=submit]")
            assert "not an admin key" in page.inner_text("#login-error")
            page.fill("input[name=key]", ADMIN)
            page.click("button[type=submit]")
            page.wait_for_selector("#chart-spend canvas")
            assert page.inner_text("#total-requests") == "6"
            assert page.evaluate("document.body.dataset.charts") == "2"
            # the charts hold the data: the spend series sums to more than zero
            total = page.evaluate("window.charts[0].data[1].reduce((a, b) => a + b, 0)")
            assert total > 0
            assert page.locator("#chart-requests canvas").count() >= 1
            assert "team-a" in page.inner_text("#by-tenant")
            assert "gpt-flaky" in page.inner_text("#by-model")
            budgets = page.inner_text("#budgets")  # spend from the ledger, Redis's minute
            assert "tenant:team-a" in budgets and "$25.0000 / 30d" in budgets
            assert "/600" in budgets
            # client text stays text
            assert page.locator("#request-log b").count() == 0
            if screenshot is not None:
                page.screenshot(path=str(screenshot), full_page=True)
            # drill down into the request that failed over
            row = page.locator("#request-log tr", has_text="gpt-flaky").first
            row.locator("a").click()
            page.wait_for_selector("#attempts")
            attempts = page.inner_text("#attempts")
            assert "gpt-flaky" in attempts and "gpt-fake" in attempts
            assert "gpt-fake" in page.inner_text("#request-fields")
        finally:
            browser.close()


def _serve_and_check(tmp_path: Path, fake_url: str, ledger_url: str,
                     screenshot: Path | None = None) -> None:
    gw = GatewayProcess(tmp_path, fake_url, {}, config=_config(fake_url, ledger_url))
    try:
        gw.wait()
        _traffic(gw.url)
        _check_dashboard(gw, screenshot)
    finally:
        gw.stop()


def test_the_dashboard_renders_and_drills_down_sqlite(tmp_path, fake_openai):
    _serve_and_check(tmp_path, fake_openai.url, f"sqlite:///{tmp_path / 'l.db'}",
                     DOCS / "dashboard.png")


def test_the_dashboard_reads_a_postgres_ledger(tmp_path, fake_openai):
    with pg_schema() as url:
        _serve_and_check(tmp_path, fake_openai.url, url)


def test_only_admins_get_in(tmp_path, fake_openai):
    gw = GatewayProcess(tmp_path, fake_openai.url, {},
                        config=_config(fake_openai.url, f"sqlite:///{tmp_path / 'l.db'}"))
    try:
        gw.wait()
        r = requests.get(gw.url + "/ui", allow_redirects=False, timeout=10)
        assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")
        r = requests.get(gw.url + "/ui", allow_redirects=False, timeout=10,
                         headers={"authorization": f"Bearer {USER}"})
        assert r.status_code == 303
        r = requests.get(gw.url + "/ui", timeout=10, headers={"authorization": f"Bearer {ADMIN}"})
        assert r.status_code == 200 and "total-requests" in r.text
        forged = requests.get(gw.url + "/ui", allow_redirects=False, timeout=10,
                              cookies={"hybridgate_ui": "ops.99999999999.deadbeef"})
        assert forged.status_code == 303
        r = requests.post(gw.url + "/ui/login?next=https://evil.example/", timeout=10,
                          data={"key": ADMIN}, allow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/ui"
        r = requests.get(gw.url + "/ui/requests/nope", timeout=10,
                         headers={"authorization": f"Bearer {ADMIN}"})
        assert r.status_code == 404
        assert requests.get(gw.url + "/ui/static/uPlot.iife.min.js", timeout=10).ok
    finally:
        gw.stop()


@pytest.mark.parametrize("token", ["", "a.b", "ops.1.x", "ops.notanumber.x"])
def test_session_tokens_are_checked(token):
    from hybridgate.config.settings import parse_config
    from hybridgate.gate.auth import KeyTable

    keys = KeyTable(parse_config({"keys": [{"id": "ops", "key": ADMIN, "admin": True},
                                           {"id": "app", "key": USER}]}))
    admin = keys.authenticate(f"Bearer {ADMIN}")
    assert keys.from_session(keys.session(admin, 60)) == admin
    assert keys.from_session(keys.session(admin, 60, now=0)) is None  # expired
    assert keys.from_session(token) is None
