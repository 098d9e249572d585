"""OpenTelemetry traces (the optional ``tracing`` extra): one span per request and one
child span per upstream attempt, exported over OTLP/HTTP.

Spans are written once a request is over, from what its ledger tracker gathered (the
attempts carry their own timings), with explicit start and end times: nothing is opened
or closed on the hot path while a request runs, and the SDK's batch processor exports
from its own thread. A client's ``traceparent`` header makes the request span a child
of the caller's span.

Attribute names follow OpenTelemetry's GenAI conventions (``gen_ai.*``), kept here with
the metrics' names in ``observe/`` since those conventions are still moving. Prompts
and answers go into spans only when ``tracing.capture_content`` is on: they are the
client's data, and a tracing backend is one more place for it to leak.
"""

from __future__ import annotations

import json
from typing import Any

from hybridgate.config.settings import TracingConfig
from hybridgate.core.types import ChatRequest, CompletionRequest, EmbeddingRequest

# The API a request came through -> gen_ai.operation.name
OPERATION = {"chat": "chat", "messages": "chat", "responses": "chat",
             "completions": "text_completion", "embeddings": "embeddings"}
CONTENT_CHARS = 16_000  # one attribute's cap: a span is not a transcript store


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _input(req: Any) -> str | None:
    if isinstance(req, ChatRequest):
        return json.dumps([{"role": m.role, "content": m.text()} for m in req.messages])
    if isinstance(req, CompletionRequest):
        return json.dumps(req.prompt)
    if isinstance(req, EmbeddingRequest):
        return None  # vectors' inputs are not conversation content
    return None


def _output(resp: Any) -> str | None:
    if resp is None or not hasattr(resp, "choices"):
        return None
    out = []
    for c in resp.choices:
        msg = getattr(c, "message", None)
        if msg is not None:
            out.append({"role": "assistant", "content": msg.content,
                        "tool_calls": [{"name": tc.function.name,
                                        "arguments": tc.function.arguments}
                                       for tc in msg.tool_calls or ()] or None})
        else:
            out.append({"role": "assistant", "content": getattr(c, "text", None)})
    return json.dumps(out)


class Tracing:
    """Off (``tracing.endpoint`` unset) it costs one attribute check per request."""

    def __init__(self, config: TracingConfig) -> None:
        self.enabled = config.endpoint is not None
        self.capture = config.capture_content
        self._provider: Any = None
        if not self.enabled:
            return
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
            from opentelemetry.trace import SpanKind, StatusCode, set_span_in_context
            from opentelemetry.trace.propagation.tracecontext import (
                TraceContextTextMapPropagator,
            )
        except ImportError as e:  # pragma: no cover - depends on the install
            raise RuntimeError("tracing needs the tracing extra: "
                               "pip install 'hybridgate[tracing]'") from e
        # a provider of our own, not the global one: the host process may have its own
        self._provider = TracerProvider(resource=Resource.create(
            {"service.name": config.service_name}))
        self._provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
            endpoint=config.endpoint, headers=dict(config.headers), timeout=10)))
        self._tracer = self._provider.get_tracer("hybridgate")
        self._kind, self._status, self._in = SpanKind, StatusCode, set_span_in_context
        self._propagator = TraceContextTextMapPropagator()

    def close(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()  # flushes what is batched

    def request(self, t: Any, status: int, end: float, error: str | None,
                req: Any = None, resp: Any = None, traceparent: str | None = None) -> None:
        """The request's span and its attempts', from its tracker (``ledger/recorder``);
        ``end`` is ``time.perf_counter()`` when it ended."""
        wall = t.ts - t.t0  # perf_counter -> epoch seconds
        operation = OPERATION.get(t.endpoint, t.endpoint)
        parent = None
        if traceparent:
            parent = self._propagator.extract({"traceparent": traceparent})
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": t.requested_model,
            "hybridgate.request_id": t.id,
            "hybridgate.endpoint": t.endpoint,
            "hybridgate.stream": t.stream,
            "http.response.status_code": status,
        }
        if t.route:
            attrs["gen_ai.response.model"] = t.route
        if t.provider:
            attrs["gen_ai.provider.name"] = t.provider
        prompt, cached, completion = t.usage
        if prompt or completion:
            attrs["gen_ai.usage.input_tokens"] = prompt
            attrs["gen_ai.usage.output_tokens"] = completion
            if cached:
                attrs["gen_ai.usage.cache_read.input_tokens"] = cached
        if t.key_id:
            attrs["hybridgate.key_id"] = t.key_id
        if t.costs is not None and t.costs.cost_usd is not None:
            attrs["hybridgate.cost_usd"] = t.costs.cost_usd
        if t.route_decision:
            attrs["hybridgate.route.decision"] = t.route_decision
            if t.route_score is not None:
                attrs["hybridgate.route.score"] = t.route_score
        if t.ttft is not None:
            attrs["hybridgate.time_to_first_token_s"] = t.ttft
        if error is not None:
            attrs["error.type"] = error
        if req is not None:
            for name in ("max_tokens", "temperature", "top_p"):
                value = getattr(req, name, None)
                if isinstance(value, int | float):
                    attrs[f"gen_ai.request.{name}"] = value
        if self.capture:
            for key, text in (("gen_ai.input.messages", _input(req)),
                              ("gen_ai.output.messages", _output(resp))):
                if text is not None:
                    attrs[key] = text[:CONTENT_CHARS]
        span = self._tracer.start_span(f"{operation} {t.requested_model}", context=parent,
                                       kind=self._kind.SERVER, attributes=attrs,
                                       start_time=_ns(t.ts))
        if error is not None:
            span.set_status(self._status.ERROR, error)
        inside = self._in(span)
        for a in t.attempts:
            a_end = wall + a.end
            child = self._tracer.start_span(
                f"{operation} {a.model}", context=inside, kind=self._kind.CLIENT,
                start_time=_ns(a_end - a.ms / 1000), attributes={
                    "gen_ai.operation.name": operation, "gen_ai.request.model": a.model,
                    "http.response.status_code": a.status,
                    **({"error.type": str(a.status), "hybridgate.error": a.error[:500]}
                       if a.error else {})})
            if a.error:
                child.set_status(self._status.ERROR, a.error[:500])
            child.end(end_time=_ns(a_end))
        span.end(end_time=_ns(wall + end))
