"""OpenAI's error shape: ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

import re

import msgspec
from starlette.responses import Response

from hybridgate.core.errors import GatewayError, InvalidRequest

_AT = re.compile(r" - at `\$\.?(.*)`$")


def error_body(err: GatewayError) -> bytes:
    return msgspec.json.encode({"error": {
        "message": err.message, "type": err.type, "param": err.param, "code": err.code}})


def error_response(err: GatewayError) -> Response:
    return Response(error_body(err), status_code=err.status, media_type="application/json",
                    headers=err.headers or None)


def from_validation(e: msgspec.ValidationError) -> InvalidRequest:
    """msgspec says "Expected `str`, got `int` - at `$.messages[0].content`": keep the
    message, name the field in ``param`` the way OpenAI does (``messages[0].content``)."""
    text = str(e)
    m = _AT.search(text)
    param = m.group(1) if m else None
    if param is not None:
        text = _AT.sub("", text) + f" (at '{param}')"
    elif text.startswith("Object missing required field"):
        param = text.split("`")[1] if "`" in text else None
    return InvalidRequest(f"invalid request: {text}", param=param, code="invalid_value")
