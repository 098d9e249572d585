"""One ledger row per request; its attempts (retries, fallbacks) ride along in it."""

from __future__ import annotations

from msgspec import Struct

COLUMNS = ("id", "ts", "key_id", "user_id", "requested_model", "route", "provider", "endpoint",
           "stream", "attempt", "prompt_tokens", "cached_tokens", "completion_tokens",
           "tokens_source", "latency_ms", "ttft_ms", "cost_usd", "baseline_cost_usd",
           "energy_j", "status", "error", "route_score", "route_decision", "route_text",
           "attempts", "parent_id")


class Record(Struct, kw_only=True, array_like=False):
    id: str
    ts: float  # unix seconds when the request arrived
    requested_model: str
    endpoint: str  # chat | completions | embeddings
    status: int  # HTTP status the client got (499: client went away)
    key_id: str | None = None  # the gateway key's id (None: keys are off)
    user_id: str | None = None  # the request's `user` field
    route: str | None = None  # the model that served it
    provider: str | None = None  # local | openai | anthropic | embeddings
    stream: bool = False
    attempt: int = 1
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    tokens_source: str = "upstream"  # upstream | counted | estimated | none
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    cost_usd: float | None = None  # None: the model has no known price
    baseline_cost_usd: float | None = None
    energy_j: float | None = None
    error: str | None = None
    route_score: float | None = None
    route_decision: str | None = None
    route_text: str | None = None  # what the router scored, kept for retraining
    # JSON list of every attempt when there was more than one: [{"model", "status",
    # "error", "ms"}, ...]; `attempt` is their count
    attempts: str | None = None
    parent_id: str | None = None  # a fan-out's member or synthesis call: the client's row
    # For the audit log only (not ledger columns): who, what was decided, and digests
    # of what was asked and answered (never the text)
    tenant: str | None = None
    policy: str | None = None  # JSON: residency, budget hold, ...
    request_sha256: str | None = None
    response_sha256: str | None = None

    def row(self) -> tuple:
        return tuple(getattr(self, c) for c in COLUMNS)
