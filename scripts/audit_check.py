#!/usr/bin/env python3
"""Check a `hybridgate audit export` without hybridgate: Python's standard library, and
the `cryptography` package for the ed25519 signatures.

    python scripts/audit_check.py export.jsonl --public-key <hex>

It checks that each record's hash covers its body and the record before it, that each
record's inclusion proof leads to the signed root of the latest tree head, that each
head is consistent with the one before it (the log only grew), and every signature with
the public key *you* trust (not one read from the file). The Merkle functions are
RFC 6962 / RFC 9162's, written out again here on purpose: a checker must not share code
with what it checks. Exit 0 when all holds, 1 with the first failure otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys


def h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def node(left: bytes, right: bytes) -> bytes:
    return h(b"\x01" + left + right)


def inclusion_ok(leaf: bytes, index: int, size: int, path: list[bytes], root: bytes) -> bool:
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def consistency_ok(old: int, new: int, old_root: bytes, new_root: bytes,
                   proof: list[bytes]) -> bool:
    if old == new:
        return not proof and old_root == new_root
    if not proof:
        return False
    if old & (old - 1) == 0:
        proof = [old_root, *proof]
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


def signature_ok(public_key: str, head: dict, ) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    message = (f"hybridgate-audit-head-v1|{head['tree_size']}|{head['root']}|"
               f"{head['chain']}|{head['ts']:.6f}").encode()
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key)).verify(
            bytes.fromhex(head["signature"] or ""), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def check(lines: list[str], public_key: str | None) -> str | None:
    """None when everything holds, else the first failure."""
    heads, recs = [], []
    for n, line in enumerate(lines, start=1):
        doc = json.loads(line)
        (heads if doc["type"] == "head" else recs if doc["type"] == "record" else []) \
            .append(doc)
        if doc["type"] not in ("head", "record", "key"):
            return f"line {n}: unknown type {doc['type']!r}"
    prev = None
    for hd in heads:
        if public_key and not signature_ok(public_key, hd):
            return f"tree head at size {hd['tree_size']}: bad signature"
        if prev is not None and "consistency" in hd and not consistency_ok(
                prev["tree_size"], hd["tree_size"], bytes.fromhex(prev["root"]),
                bytes.fromhex(hd["root"]), [bytes.fromhex(x) for x in hd["consistency"]]):
            return (f"tree head at size {hd['tree_size']} is not consistent with the one "
                    f"at size {prev['tree_size']}")
        prev = hd
    roots = {hd["tree_size"]: bytes.fromhex(hd["root"]) for hd in heads}
    last_hash = None
    for r in recs:
        body = r["body"].encode()
        leaf = h(b"\x00" + body)
        if h(bytes.fromhex(r["prev_hash"]) + leaf).hex() != r["hash"]:
            return f"record {r['seq']}: its hash does not cover its body"
        if json.loads(body)["seq"] != r["seq"]:
            return f"record {r['seq']}: its body names another position"
        if last_hash is not None and r["prev_hash"] != last_hash:
            return f"record {r['seq']}: it does not follow the record before it"
        last_hash = r["hash"]
        inc = r.get("inclusion")
        if inc is not None and not inclusion_ok(
                leaf, r["seq"], inc["tree_size"], [bytes.fromhex(x) for x in inc["path"]],
                roots.get(inc["tree_size"], b"")):
            return f"record {r['seq']}: not included in the tree head at size " \
                   f"{inc['tree_size']}"
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("export")
    ap.add_argument("--public-key", help="the ed25519 public key (hex) you trust")
    args = ap.parse_args()
    with open(args.export, encoding="utf-8") as f:
        lines = [x for x in f.read().splitlines() if x.strip()]
    failure = check(lines, args.public_key)
    if failure:
        print(f"FAILED: {failure}")
        sys.exit(1)
    n = sum('"type": "record"' in x for x in lines)
    print(f"OK: {n} records" + (", signatures checked" if args.public_key else ""))


if __name__ == "__main__":
    main()
