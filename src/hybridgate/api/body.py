"""Read a request body once, within the size limit, and decode it into a core type."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from starlette.requests import Request

from hybridgate.api.errors import from_validation
from hybridgate.core.errors import InvalidRequest, PayloadTooLarge

T = TypeVar("T")

_decode_any = msgspec.json.Decoder().decode


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body; 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def decode(body: bytes, kind: type[T]) -> T:
    """JSON -> struct. Unknown top-level fields go to ``extra`` for passthrough upstreams."""
    if not body:
        raise InvalidRequest("request body is empty; expected a JSON object")
    try:
        doc: Any = _decode_any(body)
    except msgspec.DecodeError as e:
        raise InvalidRequest(f"request body is not valid JSON: {e}",
                             code="invalid_json") from None
    if not isinstance(doc, dict):
        raise InvalidRequest("request body must be a JSON object", code="invalid_json")
    doc.pop("extra", None)  # our own field names; never taken from a client
    doc.pop("native", None)
    try:
        obj = msgspec.convert(doc, kind)
    except msgspec.ValidationError as e:
        raise from_validation(e) from None
    fields = kind.__struct_fields__  # type: ignore[attr-defined]
    if "extra" in fields:  # kinds that pass unknown fields on (OpenAI's requests)
        extra = {k: v for k, v in doc.items() if k not in fields}
        if extra:
            obj.extra = extra  # type: ignore[attr-defined]
    return obj
