"""Checking the audit log (``hybridgate audit verify``) and exporting it with proofs
(``hybridgate audit export``): the chain record by record, every tree head's root,
chain hash and signature, and each audit record against its ledger row.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from hybridgate.ledger.audit import HEAD_COLUMNS, Head, head_of, verify_signature
from hybridgate.ledger.merkle import GENESIS, Frontier, Tree, chain_hash, leaf_hash
from hybridgate.ledger.store import Store

PAGE = 5000
# audit body field -> ledger column: the row must still say what the record says
CROSS = ("key_id", "requested_model", "route", "provider", "status", "prompt_tokens",
         "cached_tokens", "completion_tokens", "cost_usd")


@dataclass
class Finding:
    seq: int | None
    request_id: str | None
    problem: str

    def __str__(self) -> str:
        where = f"record {self.seq}" if self.seq is not None else "the log"
        rid = f" (request {self.request_id})" if self.request_id else ""
        return f"{where}{rid}: {self.problem}"


@dataclass
class Verdict:
    records: int = 0
    heads: int = 0
    signed: int = 0
    first_bad: Finding | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.first_bad is None


def heads(store: Store) -> list[Head]:
    return [head_of(r) for r in store.query(
        f"SELECT {HEAD_COLUMNS} FROM audit_heads ORDER BY tree_size")]


def records(store: Store, start: int) -> Iterator[tuple[int, str, float, str, str, str]]:
    """Every record from ``seq`` ``start`` on, in order, a page at a time."""
    after = start - 1
    while True:
        page = store.query("SELECT seq, request_id, ts, body, prev_hash, hash FROM audit "
                           f"WHERE seq > ? ORDER BY seq LIMIT {PAGE}", (after,))
        yield from page
        if len(page) < PAGE:
            return
        after = page[-1][0]


def _ledger_rows(store: Store, ids: list[str]) -> dict[str, dict[str, Any]]:
    marks = ", ".join("?" for _ in ids)
    cols = ", ".join(CROSS)
    return {r[0]: dict(zip(CROSS, r[1:], strict=True)) for r in store.query(
        f"SELECT id, {cols} FROM requests WHERE id IN ({marks})", tuple(ids))}


def verify(store: Store, public_key: str | None, since: float | None = None) -> Verdict:
    v = Verdict()
    hs = heads(store)
    start, frontier, prev = 0, Frontier(), GENESIS
    first = store.query("SELECT MIN(seq), MIN(ts) FROM audit")[0]
    if first[0] is None:
        if hs:
            v.first_bad = Finding(None, None, f"the log is empty but a tree head covers "
                                              f"{hs[-1].tree_size} records")
        return v
    # start from a head: the one where pruning cut the log, or the last before --since
    anchors = [h for h in hs if h.tree_size <= int(first[0]) or
               (since is not None and h.ts <= since)]
    anchor = max((h for h in anchors if h.tree_size >= int(first[0])),
                 key=lambda h: h.tree_size, default=None)
    if int(first[0]) > 0 and anchor is None:
        v.first_bad = Finding(0, None, f"records 0 to {int(first[0]) - 1} are missing and "
                                       "no tree head marks a pruning there")
        return v
    if anchor is not None:
        if not _head_ok(anchor, public_key, v):
            return v
        start, prev = anchor.tree_size, bytes.fromhex(anchor.chain)
        frontier = Frontier.from_hex(anchor.tree_size, anchor.frontier)
        if frontier.root().hex() != anchor.root:
            v.first_bad = Finding(None, None, f"the tree head at size {anchor.tree_size} "
                                              "does not match its own frontier")
            return v
    pending = [h for h in hs if h.tree_size > start]
    batch: list[tuple[int, str, dict[str, Any]]] = []
    expected = start
    for seq, rid, _ts, body, prev_hex, hash_hex in records(store, start):
        seq = int(seq)
        if seq != expected:
            v.first_bad = Finding(expected, None, f"missing: the next record is {seq}")
            return v
        if prev_hex != prev.hex():
            v.first_bad = Finding(seq, rid, "its previous hash is not the hash of record "
                                            f"{seq - 1} (a record was removed, reordered or "
                                            "inserted)")
            return v
        leaf = leaf_hash(body.encode())
        h = chain_hash(prev, leaf)
        doc = json.loads(body)
        if h.hex() != hash_hex or doc.get("seq") != seq or doc.get("request_id") != rid:
            v.first_bad = Finding(seq, rid, "its contents do not match its hash "
                                            "(the record was edited)")
            return v
        frontier.add(leaf)
        prev, expected = h, seq + 1
        v.records += 1
        batch.append((seq, rid, doc))
        while pending and pending[0].tree_size == expected:
            head = pending.pop(0)
            if head.root != frontier.root().hex() or head.chain != prev.hex():
                low = max([x.tree_size for x in hs if x.tree_size < head.tree_size],
                          default=0)
                v.first_bad = Finding(low, None, f"records {low} to {head.tree_size - 1} do "
                                                 f"not match the tree head signed at size "
                                                 f"{head.tree_size} (they were rewritten)")
                return v
            if not _head_ok(head, public_key, v):
                return v
        if len(batch) >= PAGE and not _cross(store, batch, v):
            return v
    if batch and not _cross(store, batch, v):
        return v
    if pending:
        v.first_bad = Finding(expected, None, f"the log ends at record {expected - 1} but "
                                              f"a tree head covers {pending[-1].tree_size} "
                                              "records (the log was truncated)")
        return v
    if v.records and v.heads == 0:
        v.warnings.append("no tree head covers these records yet")
    return v


def _head_ok(head: Head, public_key: str | None, v: Verdict) -> bool:
    v.heads += 1
    if head.signature is None:
        v.warnings.append(f"the tree head at size {head.tree_size} is not signed "
                          "(set audit.signing_key)")
        return True
    if public_key is None:
        v.warnings.append("no public key given: signatures were not checked")
        return True
    if not verify_signature(public_key, head.message, head.signature):
        v.first_bad = Finding(head.tree_size - 1, None, f"the tree head at size "
                                                        f"{head.tree_size} has a bad signature")
        return False
    v.signed += 1
    return True


def _cross(store: Store, batch: list[tuple[int, str, dict[str, Any]]], v: Verdict) -> bool:
    """Each audit record against its ledger row."""
    rows = _ledger_rows(store, [rid for _, rid, _ in batch])
    for seq, rid, doc in batch:
        row = rows.get(rid)
        if row is None:
            v.first_bad = Finding(seq, rid, "its ledger row is gone")
            return False
        for col in CROSS:
            want, got = doc.get(col), row[col]
            if col == "cost_usd" and want is not None and got is not None:
                same = abs(float(want) - float(got)) < 1e-12
            else:
                same = want == got or (isinstance(want, int | float) and
                                       isinstance(got, int | float) and want == got)
            if not same:
                v.first_bad = Finding(seq, rid, f"its ledger row was edited ({col}: "
                                                f"{got!r}, the audit record says {want!r})")
                return False
    batch.clear()
    return True


def export(store: Store, since: float, public_key: str | None) -> Iterator[str]:
    """JSONL: the key, every tree head (with a consistency proof from the one before),
    then each record since ``since`` with its inclusion proof in the latest head."""
    hs = heads(store)
    leaves = [leaf_hash(body.encode()) for (body,) in store.query(
        "SELECT body FROM audit ORDER BY seq")]
    first = store.query("SELECT MIN(seq) FROM audit")[0][0] or 0
    tree = Tree([bytes(32)] * int(first) + leaves)  # pruned leaves are not needed
    yield json.dumps({"type": "key", "public_key": public_key})
    prev_size = 0
    for h in hs:
        doc: dict[str, Any] = {"type": "head", "tree_size": h.tree_size, "ts": h.ts,
                               "root": h.root, "chain": h.chain, "signature": h.signature}
        if prev_size and int(first) == 0:  # a pruned log has no proofs from genesis
            doc["consistency_from"] = prev_size
            doc["consistency"] = [x.hex() for x in tree.consistency(prev_size, h.tree_size)]
        prev_size = h.tree_size
        yield json.dumps(doc)
    latest = hs[-1].tree_size if hs else 0
    start = store.query("SELECT MIN(seq) FROM audit WHERE ts >= ?", (since,))[0][0]
    if start is None:
        return
    for seq, rid, _ts, body, prev_hex, hash_hex in records(store, int(start)):
        doc = {"type": "record", "seq": int(seq), "request_id": rid, "body": body,
               "prev_hash": prev_hex, "hash": hash_hex}
        if int(seq) < latest and int(first) == 0:
            doc["inclusion"] = {"tree_size": latest, "path": [
                x.hex() for x in tree.inclusion(int(seq), latest)]}
        yield json.dumps(doc)


def prune(store: Store, before: float) -> int:
    """Drop records older than ``before``, back to a tree head's boundary (so a check
    can start from that head's frontier and chain hash); returns how many went."""
    cut = 0
    for h in heads(store):
        last = store.query("SELECT ts FROM audit WHERE seq = ?", (h.tree_size - 1,))
        if last and float(last[0][0]) < before:
            cut = h.tree_size
    if cut:
        store.execute("DELETE FROM audit WHERE seq < ?", (cut,))
    return cut
