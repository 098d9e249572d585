"""The ASGI app: routes, error mapping and the providers' lifecycle."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from hybridgate.api.anthropic_routes import AnthropicRoutes
from hybridgate.api.errors import error_response
from hybridgate.api.openai_routes import OpenAIRoutes
from hybridgate.api.responses_routes import ResponsesRoutes
from hybridgate.config.settings import Config
from hybridgate.core.errors import (
    GatewayError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
)
from hybridgate.observe.metrics import process_exit
from hybridgate.pipeline import Pipeline
from hybridgate.ui.routes import Dashboard

log = logging.getLogger("hybridgate.api")

Handler = Callable[[Request], Awaitable[Response]]


def _by_dialect(anthropic: Handler, openai: Handler) -> Handler:
    """One path both SDKs call (``/v1/models``): each gets its own shape."""

    async def endpoint(request: Request) -> Response:
        return await (anthropic if AnthropicRoutes.speaks(request) else openai)(request)

    return endpoint


def _guard(handler: Handler) -> Handler:
    """Every failure becomes an OpenAI error body; a bug becomes a bare 500 (logged here
    with its traceback, never sent to the client)."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except GatewayError as e:
            return error_response(e)
        except UnicodeDecodeError:
            return error_response(InvalidRequest("request body is not valid UTF-8",
                                                 code="invalid_encoding"))
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            return error_response(GatewayError("internal error; see the gateway log"))

    return endpoint


class GatewayApp(Starlette):
    """Starlette, with the API's own routes dispatched first by (method, path).

    Each of those handlers already turns every failure into an OpenAI error body
    (``_guard``), so Starlette's error middleware and router have nothing to add there;
    skipping them took ~9% of the process's CPU off every proxied request in a py-spy
    profile. Everything else (404s, 405s, path parameters, lifespan) goes the usual way.
    """

    def __init__(self, routes: list[BaseRoute], **kwargs: Any) -> None:
        super().__init__(routes=routes, **kwargs)
        self.hot: dict[tuple[str, str], Handler] = {
            (method, r.path): r.endpoint for r in routes
            if isinstance(r, Route) and "{" not in r.path for method in r.methods or ()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            handler = self.hot.get((scope["method"], scope["path"]))
            if handler is not None:
                scope["app"] = self
                response = await handler(Request(scope, receive))
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(config: Config) -> Starlette:
    pipeline = Pipeline(config)
    registry, recorder = pipeline.registry, pipeline.recorder
    if not pipeline.keys.enabled and config.server.host not in ("127.0.0.1", "localhost",
                                                               "::1"):
        log.warning("listening on %s with no gateway keys: anyone who can reach it can use "
                    "every model; add `keys:` to the config", config.server.host)
    api = OpenAIRoutes(pipeline, config.server.max_body_bytes)
    anthropic = AnthropicRoutes(api)
    responses = ResponsesRoutes(api)

    async def healthz(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    async def readyz(request: Request) -> Response:
        ledger_ok = recorder.ledger is None or recorder.ledger.healthy or \
            not recorder.ledger.required
        ready = registry.ready and ledger_ok
        body = {"ready": ready,
                "models": {n: p.ready for n, p in registry.providers.items()},
                "ledger": None if recorder.ledger is None else {
                    "healthy": recorder.ledger.healthy, "error": recorder.ledger.last_error},
                "errors": registry.load_errors}
        return Response(msgspec.json.encode(body), status_code=200 if ready else 503,
                        media_type="application/json")

    async def metrics(request: Request) -> Response:
        """Prometheus text format. With gateway keys configured, an admin key is needed
        (Prometheus sends it as a bearer token) unless ``server.metrics_public``."""
        if not pipeline.metrics.enabled:
            raise NotFound("metrics are off (server.metrics: false)")
        if pipeline.keys.enabled and not config.server.metrics_public:
            pipeline.keys.authenticate_admin(request.headers.get("authorization"),
                                             request.headers.get("x-api-key"))
        if pipeline.limits.enabled:  # read at scrape time: Redis has the live figure
            pipeline.metrics.budgets(await pipeline.limits.remaining())
        body, kind = pipeline.metrics.scrape()
        return Response(body, media_type=kind)

    dashboard = Dashboard(config, pipeline.keys)
    routes = [
        Route("/v1/chat/completions", _guard(api.chat_completions), methods=["POST"]),
        Route("/v1/chat/completions", _guard(api.stored.list), methods=["GET"]),
        Route("/v1/chat/completions/{completion_id}", _guard(api.stored.retrieve),
              methods=["GET"]),
        Route("/v1/chat/completions/{completion_id}", _guard(api.stored.update),
              methods=["POST"]),
        Route("/v1/chat/completions/{completion_id}", _guard(api.stored.delete),
              methods=["DELETE"]),
        Route("/v1/chat/completions/{completion_id}/messages", _guard(api.stored.messages),
              methods=["GET"]),
        Route("/v1/completions", _guard(api.completions), methods=["POST"]),
        Route("/v1/embeddings", _guard(api.embeddings), methods=["POST"]),
        Route("/v1/feedback", _guard(api.feedback), methods=["POST"]),
        Route("/v1/messages", _guard(anthropic.messages), methods=["POST"]),
        Route("/v1/messages/count_tokens", _guard(anthropic.count_tokens), methods=["POST"]),
        Route("/v1/responses", _guard(responses.create), methods=["POST"]),
        Route("/v1/responses/input_tokens", _guard(responses.input_tokens),
              methods=["POST"]),
        Route("/v1/responses/{response_id}", _guard(responses.retrieve), methods=["GET"]),
        Route("/v1/responses/{response_id}", _guard(responses.delete), methods=["DELETE"]),
        Route("/v1/responses/{response_id}/input_items", _guard(responses.input_items),
              methods=["GET"]),
        Route("/v1/models", _guard(_by_dialect(anthropic.list_models, api.list_models)),
              methods=["GET"]),
        Route("/v1/models/{model:path}",
              _guard(_by_dialect(anthropic.get_model, api.get_model)), methods=["GET"]),
        Route("/metrics", _guard(metrics), methods=["GET"]),
        *dashboard.routes(),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            return error_response(MethodNotAllowed(
                f"method {request.method} is not allowed on {request.url.path}"))
        if exc.status_code == 413:
            return error_response(PayloadTooLarge("request body too large"))
        if exc.status_code == 404:
            return error_response(NotFound(f"no route for {request.url.path}"))
        return error_response(GatewayError(str(exc.detail), status=exc.status_code))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await pipeline.start()
        try:
            yield
        finally:
            await pipeline.close()
            process_exit()

    app = GatewayApp(routes=routes, lifespan=lifespan,
                     exception_handlers={HTTPException: http_error})
    app.state.pipeline = pipeline
    return app
