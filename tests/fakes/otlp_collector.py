"""A fake OpenTelemetry collector: a real HTTP server on loopback taking OTLP/HTTP
(protobuf ``ExportTraceServiceRequest`` on ``POST /v1/traces``), as a collector would,
and keeping the spans it was sent, their attributes decoded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.fakes.server import FakeServer


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    start: int  # ns
    end: int
    attrs: dict[str, Any]
    status: int  # 0 unset, 1 ok, 2 error
    service: str


class FakeCollector(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.spans: list[Span] = []

    def reset(self) -> None:
        super().reset()
        self.spans = []

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/traces", self.traces)

    async def traces(self, request: web.Request) -> web.Response:
        msg = ExportTraceServiceRequest()
        msg.ParseFromString(await request.read())
        self.requests.append({"headers": dict(request.headers), "body": None})
        for rs in msg.resource_spans:
            res = {a.key: _value(a.value) for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    self.spans.append(Span(
                        s.name, s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(),
                        s.kind, s.start_time_unix_nano, s.end_time_unix_nano,
                        {a.key: _value(a.value) for a in s.attributes}, s.status.code,
                        res.get("service.name", "")))
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")
