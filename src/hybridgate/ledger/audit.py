"""The tamper-evident audit log: one record per request, appended in the same
transaction as its ledger row, so a committed row always has its record and a crash
leaves neither.

Records form a hash chain (each record's hash covers the one before), and every
``head_every`` records or ``head_interval`` seconds a tree head is written: the RFC 6962
Merkle root over every record so far, the chain's last hash, the time, and an ed25519
signature from the operator's key (``audit.signing_key``). Editing, deleting,
reordering or truncating records breaks the chain or a head; rewriting the chain from
some record on (the tail replaced) no longer matches the signed roots. ``hybridgate
audit verify`` checks all of it and names the first bad record; ``audit export`` writes
records with inclusion proofs, and heads with consistency proofs, for an outside check.

Appends are serialised: SQLite's writer lock (BEGIN IMMEDIATE), or a Postgres advisory
lock held for the transaction, so several processes and replicas extend one chain.
A record holds digests of the request and response, never their text.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from hybridgate.config.settings import AuditConfig
from hybridgate.ledger.merkle import GENESIS, Frontier, chain_hash, leaf_hash

HEAD_PREFIX = "hybridgate-audit-head-v1"

FIELDS = ("request_id", "ts", "key_id", "tenant", "endpoint", "requested_model", "route",
          "provider", "route_decision", "route_score", "policy", "prompt_tokens",
          "cached_tokens", "completion_tokens", "cost_usd", "status", "error",
          "request_sha256", "response_sha256")


def body_of(rec: Any, seq: int) -> bytes:
    """The record's canonical bytes (sorted keys, no spaces): what is hashed."""
    doc = {f: getattr(rec, "id" if f == "request_id" else f, None) for f in FIELDS}
    doc["seq"] = seq
    return json.dumps(doc, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


def head_message(size: int, root: bytes, chain: bytes, ts: float) -> bytes:
    """What a tree head's signature covers."""
    return f"{HEAD_PREFIX}|{size}|{root.hex()}|{chain.hex()}|{ts:.6f}".encode()


def load_private_key(seed_hex: str) -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        seed = bytes.fromhex(seed_hex.strip())
    except ValueError:
        raise ValueError("audit.signing_key must be 64 hex digits (an ed25519 seed; "
                         "`hybridgate audit keygen` makes one)") from None
    if len(seed) != 32:
        raise ValueError("audit.signing_key must be 32 bytes (64 hex digits)")
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_hex(private: Any) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def verify_signature(public_key_hex: str, message: bytes, signature_hex: str) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex))
        key.verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass
class Head:
    tree_size: int
    ts: float
    root: str
    chain: str
    frontier: list[str]
    signature: str | None

    @property
    def message(self) -> bytes:
        return head_message(self.tree_size, bytes.fromhex(self.root),
                            bytes.fromhex(self.chain), self.ts)


HEAD_COLUMNS = "tree_size, ts, root, chain, frontier, signature"


def head_of(row: tuple) -> Head:
    return Head(int(row[0]), float(row[1]), row[2], row[3], json.loads(row[4]), row[5])


class AuditLog:
    """Appends records inside the ledger writer's transaction (``Store.insert``)."""

    def __init__(self, cfg: AuditConfig) -> None:
        self.cfg = cfg
        self.key = load_private_key(cfg.signing_key) if cfg.signing_key else None

    def append(self, store: Any, cur: Any, records: list[Any]) -> None:
        """``records``: the ledger records this transaction inserts (new ones only)."""
        sql = store._sql
        cur.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        last = cur.fetchone()
        seq, prev = (int(last[0]) + 1, bytes.fromhex(last[1])) if last else (0, GENESIS)
        rows, leaves = [], []
        for rec in records:
            body = body_of(rec, seq)
            leaf = leaf_hash(body)
            h = chain_hash(prev, leaf)
            rows.append((seq, rec.id, rec.ts, body.decode(), prev.hex(), h.hex()))
            leaves.append(leaf)
            seq, prev = seq + 1, h
        if rows:
            cur.executemany(sql("INSERT INTO audit (seq, request_id, ts, body, prev_hash, "
                                "hash) VALUES (?, ?, ?, ?, ?, ?)"), rows)
        self._maybe_head(store, cur, seq, prev, leaves)

    def _maybe_head(self, store: Any, cur: Any, size: int, chain: bytes,
                    new_leaves: list[bytes]) -> None:
        cur.execute(f"SELECT {HEAD_COLUMNS} FROM audit_heads ORDER BY tree_size DESC LIMIT 1")
        row = cur.fetchone()
        last = head_of(row) if row else None
        last_size = last.tree_size if last else 0
        now = time.time()
        if size == last_size or (size - last_size < self.cfg.head_every and last is not None
                                 and now - last.ts < self.cfg.head_interval):
            return
        frontier = Frontier.from_hex(last_size, last.frontier) if last else Frontier()
        first_new = size - len(new_leaves)
        if first_new > last_size:  # records since the last head, from earlier batches
            cur.execute(store._sql("SELECT body FROM audit WHERE seq >= ? AND seq < ? "
                                   "ORDER BY seq"), (last_size, first_new))
            for (body,) in cur.fetchall():
                frontier.add(leaf_hash(body.encode()))
        for leaf in new_leaves[max(0, last_size - first_new):]:
            frontier.add(leaf)
        root = frontier.root()
        sig = self.key.sign(head_message(size, root, chain, now)).hex() if self.key else None
        cur.execute(store._sql(f"INSERT INTO audit_heads ({HEAD_COLUMNS}) "
                               "VALUES (?, ?, ?, ?, ?, ?)"),
                    (size, now, root.hex(), chain.hex(), json.dumps(frontier.to_hex()), sig))
