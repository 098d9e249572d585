"""The operator's dashboard: ``GET /ui`` (overview), ``/ui/requests/{id}`` (one request's
drill-down), ``/ui/login`` and the vendored chart library under ``/ui/static``.

Server-rendered (Jinja2, autoescaped: model names and errors come from clients), with
uPlot (vendored from npm, MIT) drawing the charts from JSON embedded in the page; no
front-end build step. Behind an admin key: a bearer header, or a session cookie set by
signing in with one (``gate/auth``). Without gateway keys (a loopback gateway) it is
open, like the API.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from urllib.parse import parse_qs

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from hybridgate.config.settings import Config
from hybridgate.core.errors import AuthenticationFailed, NotFound
from hybridgate.gate.auth import KeyTable
from hybridgate.gate.budgets import redis_client, standings
from hybridgate.ledger.recorder import ledger_url
from hybridgate.ledger.report import fmt_ms, fmt_usd, parse_since
from hybridgate.ui import data

HERE = Path(__file__).parent
COOKIE = "hybridgate_ui"
SESSION_SECONDS = 12 * 3600
_env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                          autoescape=True, undefined=jinja2.StrictUndefined)
_env.filters.update(usd=fmt_usd, ms=fmt_ms,
                    when=lambda ts: time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)),
                    pct=lambda v: "-" if v is None else f"{v:.1f}%")


def _page(name: str, status: int = 200, **ctx: object) -> HTMLResponse:
    return HTMLResponse(_env.get_template(name).render(**ctx), status_code=status)


class Dashboard:
    def __init__(self, config: Config, keys: KeyTable) -> None:
        self.keys = keys
        self.url = ledger_url(config)
        self.tenants = {k.id: k.tenant for k in config.keys if k.tenant}
        self.config = config
        self.redis = redis_client(config) if config.redis else None  # budgets' live side

    def _allowed(self, request: Request) -> bool:
        if not self.keys.enabled:
            return True
        h = request.headers
        if h.get("authorization") or h.get("x-api-key"):
            try:
                return self.keys.authenticate(h.get("authorization"), h.get("x-api-key")).admin
            except AuthenticationFailed:
                return False
        token = request.cookies.get(COOKIE)
        return token is not None and self.keys.from_session(token) is not None

    def _login(self, request: Request) -> Response:
        return RedirectResponse(f"/ui/login?next={request.url.path}", status_code=303)

    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            return _page("login.html", error=None)
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        key = (form.get("key") or [""])[0].strip()
        try:
            who = self.keys.authenticate(f"Bearer {key}")
        except AuthenticationFailed:
            return _page("login.html", 401, error="That key is not valid.")
        if not who.admin:
            return _page("login.html", 403, error="That key is not an admin key.")
        nxt = request.query_params.get("next", "/ui")
        if not nxt.startswith("/ui"):  # only ever back into the dashboard
            nxt = "/ui"
        resp = RedirectResponse(nxt, status_code=303)
        resp.set_cookie(COOKIE, self.keys.session(who, SESSION_SECONDS),
                        max_age=SESSION_SECONDS, httponly=True, samesite="strict", path="/ui")
        return resp

    async def overview(self, request: Request) -> Response:
        if not self._allowed(request):
            return self._login(request)
        if self.url is None:
            return _page("off.html", message=None)
        span = request.query_params.get("since", "7d")
        try:
            since = parse_since(span)
        except ValueError as e:
            return _page("off.html", 400, message=str(e))
        view = await asyncio.to_thread(data.overview, self.url, since, time.time(),
                                       self.tenants)
        budgets = await asyncio.to_thread(standings, self.config, self.url, self.redis)
        return _page("overview.html", view=view, span=span, budgets=budgets)

    async def request_detail(self, request: Request) -> Response:
        if not self._allowed(request):
            return self._login(request)
        if self.url is None:
            return _page("off.html", message=None)
        rid = request.path_params["request_id"]
        doc = await asyncio.to_thread(data.request_detail, self.url, rid)
        if doc is None:
            err = NotFound(f"no request with id '{rid}'")
            return _page("off.html", err.status, message=err.message)
        return _page("request.html", r=doc)

    def routes(self) -> list[Route | Mount]:
        return [Route("/ui", self.overview, methods=["GET"]),
                Route("/ui/login", self.login, methods=["GET", "POST"]),
                Route("/ui/requests/{request_id}", self.request_detail, methods=["GET"]),
                Mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")]

