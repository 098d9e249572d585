"""What clients asked the gateway to keep: Responses (``store``, ``previous_response_id``)
and stored chat completions (``store: true``), in the ledger's database.

In the database, not in a process, so a conversation continues on any replica. Written
on the ledger's writer thread like every record; the answer is kept before the client
has it, so the next request (on any replica) finds it. Only the owner reads, lists or
deletes an object: the caller's tenant, or its key when it has no tenant. Keeping is
opt-in (``ledger.store`` for callers without a tenant, ``tenants[].store`` for a
tenant): prompts and answers are personal data a regulated team must choose to retain.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import msgspec

from hybridgate.config.settings import Config
from hybridgate.core.errors import InvalidRequest
from hybridgate.gate.auth import Principal
from hybridgate.ledger.store import Store
from hybridgate.ledger.writer import Ledger

_encode = msgspec.json.encode
_decode = msgspec.json.decode
PAGE = 500  # rows read at a time while filtering a listing by metadata


@dataclass(slots=True)
class Kept:
    id: str
    kind: str  # "response" | "chat.completion"
    ts: float
    model: str
    metadata: dict[str, str]
    input: Any  # the conversation that led to it (JSON-able)
    body: Any  # the object as the client got it (JSON-able)


def owner(who: Principal) -> str:
    if who.tenant is not None:
        return "tenant:" + who.tenant
    return "key:" + who.key_id if who.key_id is not None else ""


def _kept(row: tuple) -> Kept:
    id_, kind, ts, model, metadata, input_, body = row
    return Kept(id_, kind, ts, model, _decode(metadata), _decode(input_), _decode(body))


_COLS = "id, kind, ts, model, metadata, input, body"


class Keeper:
    """Put, get, list, update and delete kept objects, for their owner only."""

    def __init__(self, config: Config, ledger: Ledger | None) -> None:
        self.ledger = ledger
        self.default = config.ledger.store
        self.tenants = {t.name: t.store for t in config.tenants}

    def allowed(self, who: Principal) -> bool:
        if self.ledger is None:
            return False
        if who.tenant is not None:
            mine = self.tenants.get(who.tenant)
            return self.default if mine is None else mine
        return self.default

    def _need(self, who: Principal) -> Ledger:
        if self.ledger is None:
            raise InvalidRequest("the ledger is off, so nothing is stored", code="store_disabled")
        return self.ledger

    async def put(self, who: Principal, kept: Kept) -> None:
        row = (kept.id, kept.kind, owner(who), kept.ts or time.time(), kept.model,
               _encode(kept.metadata).decode(), _encode(kept.input).decode(),
               _encode(kept.body).decode())

        def put(store: Store) -> None:
            if not store.execute("INSERT INTO stored (id, kind, owner, ts, model, metadata, "
                                 "input, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                                 "ON CONFLICT (id) DO NOTHING", row):
                raise InvalidRequest(f"an object with id '{kept.id}' is already stored",
                                     code="duplicate_id")

        await self._need(who).run(put, "storing the answer")

    async def get(self, who: Principal, kind: str, id_: str) -> Kept | None:
        def get(store: Store) -> list[tuple]:
            return store.query(f"SELECT {_COLS} FROM stored WHERE id = ? AND kind = ? "
                               "AND owner = ?", (id_, kind, owner(who)))

        rows = await self._need(who).run(get, "reading a stored object")
        return _kept(rows[0]) if rows else None

    async def delete(self, who: Principal, kind: str, id_: str) -> bool:
        def delete(store: Store) -> int:
            return store.execute("DELETE FROM stored WHERE id = ? AND kind = ? AND owner = ?",
                                 (id_, kind, owner(who)))

        return await self._need(who).run(delete, "deleting a stored object") > 0

    async def set_metadata(self, who: Principal, kind: str, id_: str,
                           metadata: dict[str, str]) -> Kept | None:
        kept = await self.get(who, kind, id_)
        if kept is None:
            return None
        kept.metadata = metadata
        if isinstance(kept.body, dict):
            kept.body["metadata"] = metadata
        args = (_encode(metadata).decode(), _encode(kept.body).decode(), id_, kind, owner(who))

        def update(store: Store) -> int:
            return store.execute("UPDATE stored SET metadata = ?, body = ? WHERE id = ? "
                                 "AND kind = ? AND owner = ?", args)

        await self._need(who).run(update, "updating a stored object")
        return kept

    async def list(self, who: Principal, kind: str, *, after: str | None, limit: int,
                   newest_first: bool, model: str | None,
                   metadata: dict[str, str]) -> tuple[list[Kept], bool]:
        """Up to ``limit`` objects in time order after the cursor ``after``, and whether
        there are more."""
        me = owner(who)
        cmp, order = ("<", "DESC") if newest_first else (">", "ASC")

        def page(store: Store) -> tuple[list[Kept], bool]:
            where, args = "kind = ? AND owner = ?", [kind, me]
            if model:
                where, args = where + " AND model = ?", [*args, model]
            if after:
                at = store.query("SELECT ts FROM stored WHERE id = ? AND kind = ? AND "
                                 "owner = ?", (after, kind, me))
                if not at:
                    raise InvalidRequest(f"no stored object with id '{after}'", param="after")
                where += f" AND (ts {cmp} ? OR (ts = ? AND id {cmp} ?))"
                args += [at[0][0], at[0][0], after]
            found: list[Kept] = []
            offset = 0
            while len(found) <= limit:
                rows = store.query(f"SELECT {_COLS} FROM stored WHERE {where} ORDER BY ts "
                                   f"{order}, id {order} LIMIT {PAGE} OFFSET {offset}",
                                   tuple(args))
                found += [k for k in map(_kept, rows)
                          if all(k.metadata.get(a) == b for a, b in metadata.items())]
                if len(rows) < PAGE:
                    break
                offset += PAGE
            return found[:limit], len(found) > limit

        return await self._need(who).run(page, "listing stored objects")
