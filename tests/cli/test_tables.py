"""What users copy out of a table is never cut: names and figures in full, piped or in
an 80-column terminal, and JSON where a script reads it."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

from rich.console import Console

from hybridgate.cli.tables import print_table
from hybridgate.models.catalog import load_catalog

ENV = {**os.environ, "COLUMNS": "80"}


def run(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "hybridgate.cli.main", *args],
                          capture_output=True, text=True, check=True, env=ENV).stdout


def test_models_list_piped_prints_every_name_whole():
    out = run("models", "list")
    assert "…" not in out
    for name in load_catalog():
        assert name in out.split(), name  # a whole word of its own, copyable


def test_models_list_json():
    docs = json.loads(run("models", "list", "--format", "json"))
    assert {d["name"] for d in docs} == set(load_catalog())
    assert sum(d["default"] for d in docs) == 1
    assert all(isinstance(d["bytes"], int) and isinstance(d["pulled"], bool) for d in docs)


def test_economics_piped_prints_names_and_figures_whole():
    out = run("economics", "--tokens-per-month", "100M", "--model", "gpt-4.1")
    assert "…" not in out
    words = out.split()
    for name in ("rtx-4090", "rtx-6000-ada", "mac-studio-m3-ultra", "cpu-2core"):
        assert name in words
    doc = json.loads(run("economics", "--tokens-per-month", "100M", "--model", "gpt-4.1",
                         "--format", "json"))
    for row in doc["rows"]:
        be = row["break_even_tokens_month"]
        if be is not None:
            assert f"{be:,.0f}" in words  # the full figure, e.g. 13,536,...


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_narrow_terminal_folds_rather_than_cuts(monkeypatch):
    out = _Terminal()
    monkeypatch.setattr("hybridgate.cli.tables.Console",
                        lambda file: Console(file=file, width=40, force_terminal=True,
                                             color_system=None))
    name = "qwen2.5-coder-0.5b-instruct-with-a-long-suffix"
    print_table(["name", "size", "description"], [[name, "491 MB", "default " * 8]], out=out)
    text = out.getvalue()
    assert "…" not in text
    # every character of the name is printed, folded over lines inside its column
    cells = "".join(line.split("│")[1].strip() for line in text.splitlines()
                    if line.count("│") >= 2)
    assert name in cells
