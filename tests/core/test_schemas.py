"""Client JSON Schemas never make the gateway fetch anything."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest
import requests

from hybridgate.core.errors import InvalidRequest
from hybridgate.core.schemas import check_schema, validator


@pytest.fixture()
def trap() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server that records every GET: the SSRF target."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            hits.append(self.path)
            body = b'{"type": "string"}'
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()


@pytest.mark.parametrize("key", ["$ref", "$dynamicRef"])
def test_a_remote_ref_is_refused_by_name_and_never_fetched(trap, key):
    url, hits = trap
    schema = {"type": "object", "properties": {"x": {key: f"{url}/x.json"}}}
    with pytest.raises(InvalidRequest) as e:
        check_schema(schema, "response_format.json_schema.schema")
    assert f"{url}/x.json" in e.value.message and e.value.param.startswith("response_format")
    assert hits == []


def test_relative_refs_outside_the_document_are_refused_too():
    for ref in ("other.json", "/etc/passwd", "file:///etc/passwd", "x.json#/a"):
        with pytest.raises(InvalidRequest, match="points outside"):
            check_schema({"items": {"$ref": ref}}, "p")


def test_local_refs_work():
    schema = {"$defs": {"name": {"type": "string"}},
              "type": "object", "properties": {"n": {"$ref": "#/$defs/name"}}}
    check_schema(schema, "p")
    v = validator(schema)
    assert v.is_valid({"n": "ok"}) and not v.is_valid({"n": 3})


def test_the_validator_itself_retrieves_nothing(trap):
    """Defence in depth: even a schema that skipped the check cannot make it fetch."""
    url, hits = trap
    v = validator({"properties": {"x": {"$ref": f"{url}/x.json"}}})
    with pytest.raises(Exception, match="x.json"):
        v.validate({"x": 1})
    assert hits == []
    assert requests.get(url + "/probe").status_code == 200 and hits == ["/probe"]
