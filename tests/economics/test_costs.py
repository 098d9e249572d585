"""The worked example in docs/economics.md, computed by the code and by the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from hybridgate.economics.costs import (
    blended_tps,
    break_even,
    capacity_month,
    load_hardware,
    monthly_self_hosted,
)

P = (0.75 * 2.00 + 0.25 * 8.00) / 1e6  # gpt-4.1, 75% input


def test_worked_example_rtx_4090():
    hw = load_hardware()["rtx-4090"]
    # prompt tokens at 4,100/s and output tokens at 1,800/s, 75% prompt tokens
    assert blended_tps(hw, 0.75) == pytest.approx(3107.37, abs=0.01)
    assert capacity_month(hw) == pytest.approx(8.16616e9, rel=1e-5)
    cost, units = monthly_self_hosted(hw, 100e6, 0.13)
    assert units == 1
    assert cost == pytest.approx(44.4167 + 3.3351, abs=1e-3)
    be = break_even(hw, P, 0.13)
    assert be.mode == "owned"
    assert be.utilization_needed == pytest.approx(0.0016560, rel=1e-4)
    assert be.break_even_tokens == pytest.approx(13.5228e6, rel=1e-4)
    # at break-even the two costs are equal, by construction
    at, _ = monthly_self_hosted(hw, be.break_even_tokens, 0.13)
    assert at == pytest.approx(be.break_even_tokens * P, rel=1e-9)


def test_worked_example_rented_cpu_box():
    hw = load_hardware()["cpu-2core"]
    be = break_even(hw, P, 0.13)
    assert be.mode == "rented"
    assert be.break_even_tokens == pytest.approx(27_594_000, rel=1e-6)
    assert be.utilization_needed == pytest.approx(0.16552, rel=1e-4)


def test_prompt_and_output_tokens_each_at_their_own_rate():
    """Dividing all tokens by the output rate (what the model did before) overstates
    the hours a prompt-heavy load needs; a profile without a prefill rate keeps that
    cautious behaviour, and the input share moves the capacity as it should."""
    hw = load_hardware()["cpu-2core"]  # 29 tok/s out, 105 tok/s in
    assert blended_tps(hw, 0.0) == pytest.approx(29)
    assert blended_tps(hw, 1.0) == pytest.approx(105)
    # 1M tokens, 75% prompt: 750k / 105 + 250k / 29 seconds
    seconds = 1e6 / blended_tps(hw, 0.75)
    assert seconds == pytest.approx(750e3 / 105 + 250e3 / 29)
    assert capacity_month(hw, input_share=0.9) > capacity_month(hw, input_share=0.5)
    extra = [{"name": "no-prefill", "description": "x", "purchase_usd": 1000,
              "lifetime_years": 1, "cloud_hourly_usd": None, "watts": 100,
              "idle_watts": 10, "tokens_per_second": 50, "reference_model": "x"}]
    assert blended_tps(load_hardware(extra)["no-prefill"], 0.75) == pytest.approx(50)
    assert blended_tps(hw, 0.75, tokens_per_second=100,
                       prefill_tokens_per_second=100) == pytest.approx(100)


def test_more_volume_than_one_unit_needs_more_units():
    hw = load_hardware()["cpu-2core"]
    cost, units = monthly_self_hosted(hw, 300e6, 0.13)
    assert units == 2 and cost == pytest.approx(2 * 0.1323 * 730)


def test_user_hardware_profile_and_never_pays():
    extra = [{"name": "tiny", "description": "x", "purchase_usd": 10_000, "lifetime_years": 1,
              "cloud_hourly_usd": None, "watts": 100, "idle_watts": 10,
              "tokens_per_second": 1, "reference_model": "x"}]
    hw = load_hardware(extra)["tiny"]
    assert break_even(hw, P, 0.13).break_even_tokens is None


def test_cli_json_and_below_break_even_message(tmp_path):
    run = [sys.executable, "-m", "hybridgate.cli.main", "economics", "--tokens-per-month",
           "100M", "--model", "gpt-4.1"]
    r = subprocess.run([*run, "--format", "json"], capture_output=True, text=True, check=True)
    doc = json.loads(r.stdout)
    rows = {row["hardware"]: row for row in doc["rows"]}
    assert rows["rtx-4090"]["api_usd_month"] == pytest.approx(350.0)
    assert rows["rtx-4090"]["saving_usd_month"] == pytest.approx(302.25, abs=0.01)
    assert rows["rtx-4090"]["prefill_tokens_per_second"] == 4100
    assert rows["h100"]["pays"] is False
    plot = tmp_path / "plot.png"
    r = subprocess.run([*run, "--hardware", "h100", "--plot", str(plot)],
                       capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    assert "below break-even" in r.stdout and plot.stat().st_size > 10_000


def test_from_ledger_uses_real_volume_and_split(tmp_path):
    from tests.ledger.test_report import seed

    url = f"sqlite:///{tmp_path / 'l.db'}"
    seed(url)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"ledger: {{url: '{url}'}}\n")
    r = subprocess.run([sys.executable, "-m", "hybridgate.cli.main", "economics",
                        "--from-ledger", "--config", str(cfg), "--format", "json",
                        "--hardware", "rtx-4090"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    # 30-day window: the "old" row (30 days ago) falls just outside it; successes only.
    prompt, completion = 4 * 500 + 4 * 1000 + 10, 4 * 125 + 4 * 250 + 10
    assert doc["input_share"] == pytest.approx(prompt / (prompt + completion))
    assert doc["tokens_per_month"] > prompt + completion  # scaled up to a month


def test_from_ledger_prices_the_local_machine_at_its_measured_rate(tmp_path):
    """Twelve local requests of 600 tokens, each with 2 s of engine time (its share of a
    batched engine): 300 tokens/s, used for the profile that served them (the ledger's
    local_hardware) instead of its reference rates; other profiles keep theirs."""
    from hybridgate.ledger.record import Record
    from hybridgate.ledger.store import Store

    watts = load_hardware(None)["cpu-2core"].watts
    url = f"sqlite:///{tmp_path / 'l.db'}"
    store = Store(url)
    store.connect()
    store.insert([Record(id=f"l{i}", ts=time.time() - 3600 + i, requested_model="auto",
                         endpoint="chat", status=200, route="qwen", provider="local",
                         prompt_tokens=500, completion_tokens=100, energy_j=2 * watts).row()
                  for i in range(12)])
    store.close()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"ledger: {{url: '{url}'}}\n")
    run = [sys.executable, "-m", "hybridgate.cli.main", "economics", "--from-ledger",
           "--config", str(cfg)]
    r = subprocess.run([*run, "--format", "json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows = {row["hardware"]: row for row in json.loads(r.stdout)["rows"]}
    assert rows["cpu-2core"]["measured"] is True
    assert rows["cpu-2core"]["tokens_per_second"] == pytest.approx(300.0)
    assert rows["cpu-2core"]["prefill_tokens_per_second"] == pytest.approx(300.0)
    assert rows["rtx-4090"]["measured"] is False
    assert rows["rtx-4090"]["tokens_per_second"] == load_hardware(None)["rtx-4090"] \
        .tokens_per_second
    text = subprocess.run(run, capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}).stdout
    assert "300.0 tokens/s measured from the ledger" in text
    # an explicit rate wins over the measured one
    r = subprocess.run([*run, "--format", "json", "--tokens-per-second", "50"],
                       capture_output=True, text=True)
    rows = {row["hardware"]: row for row in json.loads(r.stdout)["rows"]}
    assert rows["cpu-2core"]["measured"] is False and rows["cpu-2core"]["tokens_per_second"] == 50
