"""Ids and timestamps in OpenAI's shapes."""

from __future__ import annotations

import secrets
import time


def new_id(prefix: str, sep: str = "-") -> str:
    """``chatcmpl-…`` / ``call_…`` style ids: 24 random hex chars are plenty and cheap."""
    return f"{prefix}{sep}{secrets.token_hex(12)}"


def now() -> int:
    return int(time.time())
