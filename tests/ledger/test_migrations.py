"""Gateways starting together against one fresh Postgres schema migrate it once, in
turn: concurrent CREATE TABLE IF NOT EXISTS would otherwise collide in the catalog."""

from __future__ import annotations

import threading

from hybridgate.ledger.store import MIGRATIONS, Store
from tests.ledger.helpers import pg_schema


def test_concurrent_migrations_take_turns():
    with pg_schema() as url:
        errors: list[Exception] = []
        start = threading.Barrier(6)

        def boot() -> None:
            store = Store(url)
            store.connect()
            try:
                start.wait()
                store.migrate()
            except Exception as e:  # noqa: BLE001 - collected for the assertion
                errors.append(e)
            finally:
                store.close()

        threads = [threading.Thread(target=boot) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        store = Store(url)
        store.connect()
        try:
            versions = store.query("SELECT COUNT(*) FROM schema_migrations")[0][0]
        finally:
            store.close()
        assert versions == len(MIGRATIONS)
