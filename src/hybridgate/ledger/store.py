"""SQL for the ledger: one schema, two dialects (SQLite in WAL mode, Postgres), and
numbered migrations recorded in ``schema_migrations``.

Only the writer thread and the report commands open connections; nothing here runs on
the event loop.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from hybridgate.ledger.record import COLUMNS

MIGRATIONS: list[str] = [
    # 1: the requests table
    """
    CREATE TABLE IF NOT EXISTS requests (
        id TEXT PRIMARY KEY,
        ts DOUBLE PRECISION NOT NULL,
        key_id TEXT,
        user_id TEXT,
        requested_model TEXT NOT NULL,
        route TEXT,
        provider TEXT,
        endpoint TEXT NOT NULL,
        stream BOOLEAN NOT NULL,
        attempt INTEGER NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        cached_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        tokens_source TEXT NOT NULL,
        latency_ms DOUBLE PRECISION NOT NULL,
        ttft_ms DOUBLE PRECISION,
        cost_usd DOUBLE PRECISION,
        baseline_cost_usd DOUBLE PRECISION,
        energy_j DOUBLE PRECISION,
        status INTEGER NOT NULL,
        error TEXT,
        route_score DOUBLE PRECISION,
        route_decision TEXT
    );
    CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts);
    """,
    # 2: feedback from clients (POST /v1/feedback, the router issue)
    """
    ALTER TABLE requests ADD COLUMN feedback_score DOUBLE PRECISION;
    ALTER TABLE requests ADD COLUMN preferred_route TEXT;
    """,
    # 3: the text the router scored (auto-routed requests only, for retraining)
    """
    ALTER TABLE requests ADD COLUMN route_text TEXT;
    """,
    # 4: every attempt of a retried or failed-over request (JSON), the reliability issue
    """
    ALTER TABLE requests ADD COLUMN attempts TEXT;
    """,
    # 5: what clients asked to keep (store: true): responses and chat completions, the
    # APIs issue. ``owner`` is the tenant (or the key without one): only it reads them.
    """
    CREATE TABLE IF NOT EXISTS stored (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        owner TEXT NOT NULL,
        ts DOUBLE PRECISION NOT NULL,
        model TEXT NOT NULL,
        metadata TEXT NOT NULL,
        input TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS stored_owner ON stored (kind, owner, ts);
    """,
    # 6: the tamper-evident audit log (governance issue): a hash chain of records and
    # signed Merkle tree heads over them (ledger/audit)
    """
    CREATE TABLE IF NOT EXISTS audit (
        seq BIGINT PRIMARY KEY,
        request_id TEXT NOT NULL,
        ts DOUBLE PRECISION NOT NULL,
        body TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS audit_request ON audit (request_id);
    CREATE TABLE IF NOT EXISTS audit_heads (
        tree_size BIGINT PRIMARY KEY,
        ts DOUBLE PRECISION NOT NULL,
        root TEXT NOT NULL,
        chain TEXT NOT NULL,
        frontier TEXT NOT NULL,
        signature TEXT
    );
    """,
    # 7: a fan-out's member and synthesis calls point at the client's request (its row)
    """
    ALTER TABLE requests ADD COLUMN parent_id TEXT;
    """,
]


class Store:
    """A DB-API connection to the ledger database, dialect details hidden."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = urlparse(url)
        self.kind = "postgres" if parsed.scheme.startswith("postgres") else "sqlite"
        self.conn: Any = None
        cols = ", ".join(COLUMNS)
        marks = ", ".join(["?"] * len(COLUMNS))
        self.insert_sql = self._sql(f"INSERT INTO requests ({cols}) VALUES ({marks}) "
                                    "ON CONFLICT (id) DO NOTHING")
        self.audit: Any = None  # ledger/audit's AuditLog: records appended with the rows

    def connect(self) -> None:
        if self.kind == "postgres":
            import psycopg

            self.conn = psycopg.connect(self.url, connect_timeout=3, autocommit=False)
        else:
            path = sqlite_path(self.url)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            # WAL: readers (reports) never block the writer. synchronous=FULL: a commit is
            # on disk before it returns, so a committed record survives power loss too.
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA busy_timeout=5000")
        self.migrate()

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
            self.conn = None

    # The dialects differ in three places: placeholders, and how a transaction starts
    # and ends (our SQLite connection runs in autocommit mode with explicit BEGIN).

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.kind == "postgres" else sql

    def _begin(self) -> None:
        if self.kind == "sqlite":
            self.conn.execute("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        if self.kind == "postgres":
            self.conn.commit()
        elif self.conn.in_transaction:
            self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.kind == "postgres":
            self.conn.rollback()
        elif self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def migrate(self) -> None:
        """Bring the schema up to date. Several gateways starting at once against one
        Postgres would race on CREATE TABLE IF NOT EXISTS (a unique violation in the
        catalog), so they take turns under an advisory lock; SQLite's BEGIN IMMEDIATE
        already does that."""
        cur = self.conn.cursor()
        self._begin()
        if self.kind == "postgres":
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK_ID,))
        cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                    "(version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)")
        cur.execute("SELECT version FROM schema_migrations")
        done = {r[0] for r in cur.fetchall()}
        for version, script in enumerate(MIGRATIONS, start=1):
            if version in done:
                continue
            for stmt in (s.strip() for s in script.split(";")):
                if stmt:
                    cur.execute(stmt)
            cur.execute(self._sql("INSERT INTO schema_migrations VALUES (?, ?)"),
                        (version, time.time()))
        self._commit()

    def insert(self, rows: list[tuple], records: list[Any] | None = None) -> None:
        """Insert a batch in one transaction; duplicates (replays) are ignored. With an
        audit log, the batch's new ``records`` get their audit records in the same
        transaction, appends ordered across processes by a lock."""
        cur = self.conn.cursor()
        self._begin()
        try:
            fresh = None
            if self.audit is not None and records:
                if self.kind == "postgres":
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))
                marks = ", ".join("?" for _ in records)
                cur.execute(self._sql(f"SELECT id FROM requests WHERE id IN ({marks})"),
                            tuple(r.id for r in records))
                seen = {r[0] for r in cur.fetchall()}
                fresh = [r for r in records if r.id not in seen]
            cur.executemany(self.insert_sql, rows)
            if fresh:
                self.audit.append(self, cur, fresh)
        except BaseException:
            self.rollback()
            raise
        self._commit()

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        cur = self.conn.cursor()
        cur.execute(self._sql(sql), params)
        rows = cur.fetchall()
        self._commit()  # ends Postgres' implicit read transaction
        return rows

    def execute(self, sql: str, params: tuple = ()) -> int:
        """One statement in its own transaction; returns the rows it touched."""
        cur = self.conn.cursor()
        cur.execute(self._sql(sql), params)
        n = cur.rowcount
        self._commit()
        return n


LOCK_ID = 0x6879_6764  # the Postgres advisory lock that orders audit appends
MIGRATE_LOCK_ID = 0x6879_6D67  # ... and the one that lets one gateway migrate at a time


def sqlite_path(url: str) -> Path:
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///"):])
    if url.startswith("sqlite://"):
        return Path(url[len("sqlite://"):])
    return Path(url)
