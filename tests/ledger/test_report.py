"""Reports on a seeded ledger: the numbers, the formats, and the HTML in Chromium."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
import time

import pytest

from hybridgate.ledger.record import Record
from hybridgate.ledger.report import build, load_rows, parse_since
from hybridgate.ledger.store import Store

NOW = time.time()
DAY = 86400.0


def seed(url: str) -> None:
    """Ten requests over three days: local, remote priced, remote unpriced, one error."""
    recs = []
    for i in range(4):  # local: cost 0.0001 each, baseline 0.002 each
        recs.append(Record(id=f"l{i}", ts=NOW - 2 * DAY + i, requested_model="auto",
                           endpoint="chat", status=200, route="qwen", provider="local",
                           prompt_tokens=500, completion_tokens=125, latency_ms=100.0 * (i + 1),
                           ttft_ms=10.0 * (i + 1), cost_usd=0.0001, baseline_cost_usd=0.002,
                           energy_j=3.5, key_id="team-a"))
    for i in range(4):  # remote: cost 0.003 each, baseline 0.004 each
        recs.append(Record(id=f"r{i}", ts=NOW - DAY + i, requested_model="gpt-4.1-mini",
                           endpoint="chat", status=200, route="gpt-4.1-mini", provider="openai",
                           prompt_tokens=1000, cached_tokens=200, completion_tokens=250,
                           latency_ms=500.0, ttft_ms=50.0, cost_usd=0.003,
                           baseline_cost_usd=0.004, key_id="team-b"))
    recs.append(Record(id="u0", ts=NOW - 3600, requested_model="mystery", endpoint="chat",
                       status=200, route="mystery", provider="openai", prompt_tokens=10,
                       completion_tokens=10, latency_ms=300.0, cost_usd=None,
                       baseline_cost_usd=0.0001, key_id="team-b"))
    recs.append(Record(id="e0", ts=NOW - 60, requested_model="gpt-4.1-mini", endpoint="chat",
                       status=502, route="gpt-4.1-mini", provider="openai", latency_ms=5.0,
                       cost_usd=0.0, error="upstream 500", key_id="team-b"))
    recs.append(Record(id="old", ts=NOW - 30 * DAY, requested_model="auto", endpoint="chat",
                       status=200, route="qwen", provider="local", cost_usd=5.0,
                       baseline_cost_usd=5.0))
    store = Store(url)
    store.connect()
    store.insert([r.row() for r in recs])
    store.close()


@pytest.fixture()
def url(tmp_path):
    u = f"sqlite:///{tmp_path / 'seed.db'}"
    seed(u)
    return u


def rows(url, since="7d"):
    store = Store(url)
    store.connect()
    try:
        return load_rows(store, parse_since(since, NOW + 1))
    finally:
        store.close()


def test_totals_and_savings(url):
    rep = build(rows(url), parse_since("7d", NOW), "model")
    t = rep.total
    assert t.requests == 10 and t.errors == 1
    assert t.spend_usd == pytest.approx(4 * 0.0001 + 4 * 0.003)
    assert t.baseline_usd == pytest.approx(4 * 0.002 + 4 * 0.004)  # unpriced row left out
    assert t.savings_pct == pytest.approx(100 * (0.024 - 0.0124) / 0.024)
    assert t.unpriced_requests == 1 and rep.unpriced_models == ["mystery"]
    assert t.local_share == pytest.approx(0.4)
    assert t.prompt_tokens == 4 * 500 + 4 * 1000 + 10 and t.cached_tokens == 800
    assert t.energy_j == pytest.approx(14.0)


def test_group_by_route_percentiles(url):
    rep = build(rows(url), 0, "route")
    qwen = next(g for g in rep.groups if g.name == "qwen")
    assert qwen.requests == 4
    assert qwen.p50_latency_ms == pytest.approx(250.0)  # 100, 200, 300, 400
    assert qwen.p95_latency_ms == pytest.approx(385.0)
    assert qwen.p50_ttft_ms == pytest.approx(25.0)
    mini = next(g for g in rep.groups if g.name == "gpt-4.1-mini")
    assert mini.errors == 1 and mini.p50_latency_ms == pytest.approx(500.0)  # errors excluded


def test_group_by_key_and_day(url):
    keys = {g.name: g for g in build(rows(url), 0, "key").groups}
    assert keys["team-a"].spend_usd == pytest.approx(0.0004)
    assert keys["team-b"].requests == 6
    days = build(rows(url), 0, "day").groups
    assert len(days) >= 2 and sum(g.requests for g in days) == 10


def test_since_excludes_old_rows(url):
    assert build(rows(url, "90d"), 0).total.requests == 11
    assert build(rows(url, "12h"), 0).total.requests == 2


def cli(*args):
    return subprocess.run([sys.executable, "-m", "hybridgate.cli.main", *args],
                          capture_output=True, text=True, timeout=120)


def test_cli_formats(url):
    r = cli("report", "--ledger", url, "--by", "route", "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["total"]["requests"] == 10 and doc["unpriced_models"] == ["mystery"]
    r = cli("report", "--ledger", url, "--format", "csv")
    table = list(csv.DictReader(io.StringIO(r.stdout)))
    assert table[-1]["model"] == "total"
    assert float(table[-1]["spend_usd"]) == pytest.approx(0.0124)
    r = cli("report", "--ledger", url)
    assert r.returncode == 0 and "mystery" in r.stdout
    r = cli("report", "--ledger", url, "--since", "yesterday-ish")
    assert r.returncode == 2 and "--since" in r.stderr


def test_html_report_renders_in_chromium(url, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium package is needed (.ci/run installs it)"
    out = tmp_path / "report.html"
    r = cli("report", "--ledger", url, "--html", str(out), "--since", "30d")
    assert r.returncode == 0, r.stderr
    page = out.read_text()
    assert page.count("data:image/png;base64,") == 3 and "mystery" in page
    assert "http://" not in page and "https://" not in page  # self-contained
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2400",
                    f"--screenshot={shot}", out.as_uri()],
                   capture_output=True, timeout=90, check=True)
    from PIL import Image

    img = Image.open(shot).convert("RGB")
    assert img.size == (1200, 2400)
    colors = img.getcolors(maxcolors=1_000_000) or []
    # A blank or broken page is a handful of colors; text plus three plots are thousands.
    assert len(colors) > 500
    green = sum(n for n, (r_, g, b) in colors if g > 150 and r_ < 100 and b < 120)
    assert green > 500  # the "actual spend" line and fill were drawn


def test_group_by_tenant_from_the_configs_keys(url, tmp_path):
    tenants = {"team-a": "research", "team-b": "research"}
    groups = {g.name: g for g in build(rows(url), 0, "tenant", tenants).groups}
    assert groups["research"].requests == 10  # both keys' requests
    groups = {g.name: g for g in build(rows(url), 0, "tenant", {"team-a": "r"}).groups}
    assert (groups["r"].requests, groups["-"].requests) == (4, 6)  # "-": no tenant
    cfg = tmp_path / "hg.yaml"
    cfg.write_text(f"ledger: {{url: '{url}'}}\ntenants: [{{name: research}}]\n"
                   "keys:\n  - {id: team-a, key: aaaaaaaaaaaaaaaaaaaa, tenant: research}\n")
    r = cli("report", "--config", str(cfg), "--by", "tenant", "--since", "90d",
            "--format", "json")
    assert r.returncode == 0, r.stderr
    by = {g["name"]: g["requests"] for g in json.loads(r.stdout)["groups"]}
    assert by["research"] == 4  # team-a's; team-b has no tenant in this config
    r = cli("report", "--ledger", url, "--by", "tenant")
    assert r.returncode != 0 and "--config" in r.stderr
