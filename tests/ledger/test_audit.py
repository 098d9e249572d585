"""The tamper-evident audit log through a real gateway: every request's record lands
in the same commit as its ledger row, `hybridgate audit verify` passes on the untouched
log and names the first bad record after each kind of tampering (an edit, a deletion,
a reordering, a truncation, a rewritten tail, an edited ledger row, a forged head), and
the export checks out with scripts/audit_check.py, which does not import hybridgate."""

from __future__ import annotations

import json
import secrets
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from hybridgate.config.settings import parse_config
from hybridgate.ledger.audit import load_private_key, public_hex
from hybridgate.ledger.merkle import chain_hash, leaf_hash
from tests.conftest import OPENAI_KEY, start_gateway

ROOT = Path(__file__).parents[2]
SEED = secrets.token_hex(32)
PUBLIC = public_hex(load_private_key(SEED))


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hybridgate.cli.main", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def audited(tmp_path_factory, fake_openai) -> Path:
    """A ledger with 23 requests (some streamed, one failed) and its tree heads."""
    db = tmp_path_factory.mktemp("audit") / "ledger.db"
    gw = start_gateway(parse_config({
        "ledger": {"url": f"sqlite:///{db}",
                   "audit": {"signing_key": SEED, "head_every": 5}},
        "prices": [{"id": "gpt-fake", "input": 1.0, "output": 2.0}],
        "models": [{"name": "gpt-fake", "provider": "openai", "api_key": OPENAI_KEY,
                    "base_url": fake_openai.url + "/v1"}]}))
    try:
        for i in range(23):
            body = {"model": "gpt-fake" if i != 7 else "nope", "stream": i % 3 == 0,
                    "messages": [{"role": "user", "content": f"question {i}"}]}
            r = requests.post(gw.url + "/v1/chat/completions", json=body, timeout=10)
            assert r.status_code == (404 if i == 7 else 200)
    finally:
        gw.stop()
    return db


def _copy(db: Path, tmp_path: Path) -> Path:
    out = tmp_path / "copy.db"
    shutil.copy(db, out)
    return out


def _verify(db: Path) -> subprocess.CompletedProcess[str]:
    return cli("audit", "verify", "--ledger", f"sqlite:///{db}", "--public-key", PUBLIC)


def test_every_request_has_its_record_and_the_log_verifies(audited):
    with sqlite3.connect(audited) as c:
        ids = {r[0] for r in c.execute("SELECT id FROM requests")}
        audit = c.execute("SELECT request_id, body FROM audit ORDER BY seq").fetchall()
        heads = c.execute("SELECT tree_size, signature FROM audit_heads").fetchall()
    assert len(ids) == 23 and {r[0] for r in audit} == ids
    docs = [json.loads(b) for _, b in audit]
    assert all(len(d["request_sha256"]) == 64 for d in docs)
    assert {d["status"] for d in docs} == {200, 404}
    streamed = [d for d in docs if d["response_sha256"] and d["status"] == 200]
    assert len(streamed) == 22  # every answer's digest, streamed or not
    assert "question" not in "".join(b for _, b in audit)  # digests, never the text
    assert len(heads) >= 4 and all(sig for _, sig in heads)
    r = _verify(audited)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "OK: 23 records" in r.stdout and "signatures checked" in r.stdout


def _tamper(db: Path, sql: str, *params: object) -> None:
    with sqlite3.connect(db) as c:
        c.execute(sql, params)


def _rechain(db: Path, start: int) -> None:
    """An attacker who rewrites records from ``start`` on and fixes up the chain."""
    with sqlite3.connect(db) as c:
        prev = bytes.fromhex(c.execute("SELECT hash FROM audit WHERE seq = ?",
                                       (start - 1,)).fetchone()[0])
        for seq, body in c.execute("SELECT seq, body FROM audit WHERE seq >= ? ORDER BY seq",
                                   (start,)).fetchall():
            doc = json.loads(body)
            doc["cost_usd"] = 0.0
            new = json.dumps(doc, sort_keys=True, separators=(",", ":"))
            h = chain_hash(prev, leaf_hash(new.encode()))
            c.execute("UPDATE audit SET body = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                      (new, prev.hex(), h.hex(), seq))
            c.execute("UPDATE requests SET cost_usd = 0.0 WHERE id = ?", (doc["request_id"],))
            prev = h


@pytest.mark.parametrize("how, expect", [
    ("edit", "record 9 (request"),
    ("delete", "record 9: missing"),
    ("reorder", "record 9 (request"),
    ("truncate", "truncated"),
    ("tail", "rewritten"),
    ("ledger", "ledger row was edited"),
    ("head", "bad signature"),
])
def test_tampering_is_detected_and_the_first_bad_record_named(audited, tmp_path, how,
                                                              expect):
    db = _copy(audited, tmp_path)
    if how == "edit":
        _tamper(db, "UPDATE audit SET body = replace(body, '\"status\":200', "
                    "'\"status\":201') WHERE seq = 9")
    elif how == "delete":
        _tamper(db, "DELETE FROM audit WHERE seq = 9")
    elif how == "reorder":
        with sqlite3.connect(db) as c:
            a, b = (c.execute("SELECT body, prev_hash, hash, request_id FROM audit "
                              "WHERE seq = ?", (s,)).fetchone() for s in (9, 10))
            c.execute("UPDATE audit SET body=?, prev_hash=?, hash=?, request_id=? "
                      "WHERE seq = 9", b)
            c.execute("UPDATE audit SET body=?, prev_hash=?, hash=?, request_id=? "
                      "WHERE seq = 10", a)
    elif how == "truncate":
        _tamper(db, "DELETE FROM audit WHERE seq >= 18")
    elif how == "tail":
        _rechain(db, 12)
    elif how == "ledger":
        _tamper(db, "UPDATE requests SET cost_usd = cost_usd / 2 WHERE id = "
                    "(SELECT request_id FROM audit WHERE seq = 9)")
    else:
        _tamper(db, "UPDATE audit_heads SET signature = ? WHERE tree_size = "
                    "(SELECT MAX(tree_size) FROM audit_heads)", "00" * 64)
    r = _verify(db)
    assert r.returncode == 1, r.stdout
    assert "FAILED" in r.stdout and expect in r.stdout, r.stdout


def test_the_export_checks_out_without_hybridgate(audited, tmp_path):
    out = tmp_path / "export.jsonl"
    r = cli("audit", "export", "--ledger", f"sqlite:///{audited}", "--since", "1d",
            "--out", str(out))
    assert r.returncode == 0, r.stderr
    lines = out.read_text().splitlines()
    assert sum('"type": "record"' in x for x in lines) == 23
    assert any('"consistency"' in x for x in lines) and any('"inclusion"' in x for x in lines)
    script = [sys.executable, "-I", str(ROOT / "scripts" / "audit_check.py")]  # no hybridgate
    ok = subprocess.run([*script, str(out), "--public-key", PUBLIC], capture_output=True,
                        text=True, timeout=60)
    assert ok.returncode == 0 and "OK: 23 records" in ok.stdout, ok.stdout + ok.stderr
    forged = tmp_path / "forged.jsonl"
    docs = [json.loads(x) for x in lines]
    victim = next(d for d in docs if d["type"] == "record" and d["seq"] == 4)
    victim["body"] = victim["body"].replace('"status":200', '"status":500')
    forged.write_text("\n".join(json.dumps(d) for d in docs))
    bad = subprocess.run([*script, str(forged), "--public-key", PUBLIC],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "record 4" in bad.stdout
    wrong_key = public_hex(load_private_key(secrets.token_hex(32)))
    bad = subprocess.run([*script, str(out), "--public-key", wrong_key],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "bad signature" in bad.stdout


def test_keygen_and_prune_keep_a_verifiable_log(audited, tmp_path):
    r = cli("audit", "keygen")
    assert r.returncode == 0 and len(r.stdout.strip()) == 64
    assert "public key: " in r.stderr
    db = _copy(audited, tmp_path)
    from hybridgate.ledger.audit_verify import prune
    from hybridgate.ledger.store import Store

    store = Store(f"sqlite:///{db}")
    store.connect()
    try:
        cut = prune(store, before=9e18)  # everything is "old": back to the last head
    finally:
        store.close()
    assert cut >= 20
    r = _verify(db)
    assert r.returncode == 0, r.stdout
    cfg = tmp_path / "short.yaml"
    cfg.write_text(f"ledger: {{url: 'sqlite:///{db}', audit: {{retention_days: 30}}}}\n")
    r = cli("audit", "prune", "--config", str(cfg))
    assert r.returncode != 0 and "retention_days" in (r.stdout + r.stderr)
    cfg.write_text(f"ledger: {{url: 'sqlite:///{db}'}}\n")  # 183 days: all is recent
    r = cli("audit", "prune", "--config", str(cfg))
    assert r.returncode == 0 and "nothing past retention" in r.stdout


def test_verify_since_starts_from_a_signed_head(audited):
    whole = _verify(audited)
    assert "OK: 23 records" in whole.stdout
    # a start after every head: only the records since the last signed head are walked,
    # from that head's frontier and chain hash
    r = cli("audit", "verify", "--ledger", f"sqlite:///{audited}", "--public-key", PUBLIC,
            "--since", "2099-01-01")
    assert r.returncode == 0, r.stdout + r.stderr
    walked = int(r.stdout.split("OK: ")[1].split(" records")[0])
    with sqlite3.connect(audited) as c:
        last = c.execute("SELECT MAX(tree_size) FROM audit_heads").fetchone()[0]
    assert walked == 23 - last
