"""Prometheus metrics (``GET /metrics``), every name in this one module.

Names follow OpenTelemetry's GenAI semantic conventions where one exists
(``gen_ai.client.token.usage``, ``gen_ai.client.operation.duration``, time to first
chunk), written the Prometheus way (dots to underscores, the unit as a suffix); those
conventions are still moving, so they change here and nowhere else. The gateway's own
figures (cost, baseline cost, route decisions, attempts, breakers, the local queue) are
``hybridgate_*``.

With ``--workers`` each process writes its values to files in
``PROMETHEUS_MULTIPROC_DIR`` (the serve command sets it) and a scrape of any worker adds
them up (prometheus-client's multiprocess mode). One request costs a few dictionary
lookups and counter increments on memory-mapped values: label sets are resolved once
and cached, never per request.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Seconds: LLM calls run from milliseconds (a cached or local short answer) to minutes.
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40)
# Tokens: OpenTelemetry's advised boundaries for gen_ai.client.token.usage.
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)

MODEL = ("gen_ai_operation_name", "gen_ai_request_model", "gen_ai_response_model",
         "gen_ai_provider_name")


class Metrics:
    """The gateway's metrics, in their own registry (tests start several gateways in one
    process; none of them touches prometheus-client's global one)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled  # off: nothing counted, /metrics is 404
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "GenAI operation duration, client request to last byte (OTel "
            "gen_ai.client.operation.duration)", [*MODEL, "error_type"],
            buckets=DURATION_BUCKETS, registry=r)
        self.tokens = Histogram(
            "gen_ai_client_token_usage", "Tokens per request by type, input or output "
            "(OTel gen_ai.client.token.usage)", [*MODEL, "gen_ai_token_type"],
            buckets=TOKEN_BUCKETS, registry=r)
        self.ttft = Histogram(
            "gen_ai_client_operation_time_to_first_chunk_seconds",
            "Time to the first generated token (OTel "
            "gen_ai.client.operation.time_to_first_chunk)", list(MODEL),
            buckets=TTFT_BUCKETS, registry=r)
        self.requests = Counter("hybridgate_requests", "Requests answered, by status",
                                ["endpoint", "model", "status"], registry=r)
        self.errors = Counter("hybridgate_errors", "Failed requests by error type",
                              ["endpoint", "model", "error_type"], registry=r)
        self.token_count = Counter("hybridgate_tokens", "Tokens by type (input, cached, "
                                   "output)", ["model", "type"], registry=r)
        self.cost = Counter("hybridgate_cost_usd", "What the requests cost, USD",
                            ["model"], registry=r)
        self.baseline = Counter("hybridgate_baseline_cost_usd", "What the same tokens would "
                                "have cost on the baseline (frontier) model, USD",
                                ["model"], registry=r)
        self.routes = Counter("hybridgate_route_decisions", "Route-group decisions",
                              ["group", "member", "reason"], registry=r)
        self.attempts = Counter("hybridgate_attempts", "Upstream attempts by outcome "
                                "(ok, or the status it failed with)", ["model", "outcome"],
                                registry=r)
        self.fallbacks = Counter("hybridgate_fallbacks", "Requests answered by another model "
                                 "than the first one tried", ["from_model", "to_model"],
                                 registry=r)
        self.breaker = Gauge("hybridgate_breaker_open", "1 while a model's breaker is open "
                             "(or half-open)", ["model"], registry=r, multiprocess_mode="max")
        self.queue = Gauge("hybridgate_local_queue_depth", "Requests at a local model, "
                           "generating or waiting", ["model"], registry=r,
                           multiprocess_mode="livesum")
        self.local_tps = Gauge("hybridgate_local_tokens_per_second", "A local model's "
                               "generation speed over its last request", ["model"],
                               registry=r, multiprocess_mode="livemax")
        self.budget_left = Gauge("hybridgate_budget_remaining_usd", "A tenant's or key's "
                                 "budget left this period (spend and holds in Redis), USD",
                                 ["scope"], registry=r, multiprocess_mode="mostrecent")
        self.cache = Counter("hybridgate_cache_lookups", "Answer-cache lookups by result "
                             "(hit, semantic-hit, miss; semantic-skipped: a semantic lookup "
                             "left unconfirmed because MiniLM was busy or failed)", ["result"],
                             registry=r)
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # ------------------------------------------------------------------ per request

    def cache_lookup(self, result: str) -> None:
        if self.enabled:
            self._child(self.cache, result).inc()

    def request(self, t: Any, status: int, seconds: float, error: str | None = None) -> None:
        """One finished request, from the ledger's tracker (what the row says)."""
        child = self._child
        model = t.route or t.requested_model
        kind = t.provider or "none"
        labels = (t.endpoint, t.requested_model, model, kind)
        child(self.requests, t.endpoint, model, str(status)).inc()
        child(self.duration, *labels, error or "").observe(seconds)
        if error is not None:
            child(self.errors, t.endpoint, model, error).inc()
        prompt, cached, completion = t.usage
        if prompt or completion:
            child(self.tokens, *labels, "input").observe(prompt)
            child(self.tokens, *labels, "output").observe(completion)
            child(self.token_count, model, "input").inc(prompt)
            child(self.token_count, model, "output").inc(completion)
            if cached:
                child(self.token_count, model, "cached").inc(cached)
        if t.ttft is not None:
            child(self.ttft, *labels).observe(t.ttft)
        costs = t.costs
        if costs is not None:
            if costs.cost_usd:
                child(self.cost, model).inc(costs.cost_usd)
            if costs.baseline_cost_usd:
                child(self.baseline, model).inc(costs.baseline_cost_usd)
        if t.route_decision:
            member, _, reason = t.route_decision.partition(":")
            child(self.routes, t.requested_model, member, reason).inc()
        attempts = t.attempts
        for a in attempts:
            child(self.attempts, a.model, "ok" if a.error is None else str(a.status)).inc()
        if attempts and attempts[0].model != model and status < 400:
            child(self.fallbacks, attempts[0].model, model).inc()

    def budgets(self, left: dict[str, float]) -> None:
        for scope, usd in left.items():
            self._child(self.budget_left, scope).set(usd)

    def breaker_state(self, model: str, open_: bool) -> None:
        self._child(self.breaker, model).set(1 if open_ else 0)

    def queue_gauge(self, model: str) -> Any:
        return self._child(self.queue, model)

    def local_speed(self, model: str, tokens: int, seconds: float) -> None:
        if tokens and seconds > 0:
            self._child(self.local_tps, model).set(tokens / seconds)

    # ------------------------------------------------------------------ scrape

    def scrape(self) -> tuple[bytes, str]:
        """The text exposition: this process's registry, or every worker's files."""
        path = os.environ.get(MULTIPROC_ENV)
        if path:
            reg = CollectorRegistry()
            multiprocess.MultiProcessCollector(reg, path=path)
            return generate_latest(reg), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def process_exit() -> None:
    """A worker leaving: its live gauges stop counting (multiprocess mode)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(os.getpid())

