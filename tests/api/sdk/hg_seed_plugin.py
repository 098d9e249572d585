"""A pytest plugin loaded into the openai SDK's own test run (tests/api/test_sdk_suites):
the SDK's generated tests read, update and delete stored objects by placeholder ids
("completion_id", "resp_677e..."), which a mock server always has. Before each of its
tests this copies a real stored chat completion and a real stored response (made
through the gateway by the harness) under those ids, so the gateway's real routes
answer them."""

from __future__ import annotations

import os
import sqlite3

import pytest

IDS = {"chat.completion": ["completion_id"],
       "response": ["response_id", "resp_677efb5139a88190b512bc3fef8e535d",
                    "previous_response_id", "resp_123"]}


@pytest.fixture(autouse=True)
def _hybridgate_placeholders() -> None:
    path, templates = os.environ["HG_SEED_LEDGER"], os.environ["HG_SEED_FROM"].split(",")
    with sqlite3.connect(path) as db:
        for template in templates:
            kind = db.execute("SELECT kind FROM stored WHERE id = ?", (template,)).fetchone()[0]
            for new in IDS[kind]:
                db.execute("DELETE FROM stored WHERE id = ?", (new,))
                db.execute("INSERT INTO stored (id, kind, owner, ts, model, metadata, input, "
                           "body) SELECT ?, kind, owner, ts, model, metadata, input, "
                           "replace(body, ?, ?) FROM stored WHERE id = ?",
                           (new, template, new, template))
