"""``hybridgate keys``: the printed entry is valid config and matches the printed key."""

from __future__ import annotations

import yaml

from hybridgate.config.settings import parse_config
from hybridgate.gate.auth import KeyTable
from tests.cli.test_cli import run


def test_new_key_entry_authenticates_the_new_key():
    r = run("keys", "new", "--id", "ci-bot")
    assert r.returncode == 0, r.stderr
    key = r.stdout.strip()
    assert key.startswith("hg-") and len(key) > 40 and key not in r.stderr
    doc = yaml.safe_load("keys:\n" + r.stderr.split("\n", 1)[1])
    table = KeyTable(parse_config(doc))
    assert table.authenticate(f"Bearer {key}").key_id == "ci-bot"
    hashed = run("keys", "hash", input_text=key + "\n")
    assert hashed.stdout.strip() == doc["keys"][0]["key_sha256"]


def test_bad_key_id_and_empty_stdin_are_refused():
    assert "--id" in run("keys", "new", "--id", "a b").stderr
    assert "no key on stdin" in run("keys", "hash", input_text="").stderr
