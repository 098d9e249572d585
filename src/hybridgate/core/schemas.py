"""Client JSON Schemas, held to the document they came in.

A schema is client text: a ``$ref`` to ``http://10.0.0.5/admin`` would make the gateway
fetch from the operator's network (``jsonschema`` still retrieves unknown remote refs
with ``urlopen``; llama.cpp's schema-to-grammar converter does too). So a client schema
may only reference itself (``#...``), every other reference is refused with a 400 naming
it, and the validators we build resolve through a registry that retrieves nothing.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import jsonschema
from referencing import Registry
from referencing.exceptions import NoSuchResource

from hybridgate.core.errors import InvalidRequest

_REF_KEYS = ("$ref", "$dynamicRef", "$recursiveRef")


def _refuse(uri: str) -> Any:
    raise NoSuchResource(ref=uri)


# Resolves the document itself (and the draft meta-schemas jsonschema bundles); any other
# URI is "no such resource", never a network call.
_OFFLINE = Registry(retrieve=_refuse)  # type: ignore[call-arg]


def check_schema(schema: object, param: str) -> None:
    """400 unless ``schema`` is a valid JSON Schema whose references stay inside it."""
    if not isinstance(schema, dict):
        raise InvalidRequest(f"{param} must be a JSON Schema object", param=param)
    _check_refs(schema, param)
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as e:
        raise InvalidRequest(f"{param} is not a valid JSON Schema: {e.message}",
                             param=param, code="invalid_schema") from None


def _check_refs(schema: dict[str, Any], param: str) -> None:
    """Walks the schema without recursion (a deeply nested schema cannot overflow the
    stack); linear in its size."""
    stack: list[object] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key in _REF_KEYS:
                ref = node.get(key)
                if ref is not None and not (isinstance(ref, str) and ref.startswith("#")):
                    raise InvalidRequest(
                        f"{param}: the reference {key} {ref!r} points outside the schema; "
                        "only references within the document ('#/...') are allowed",
                        param=param, code="invalid_schema")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    """A validator for ``schema`` that resolves references offline only; compiled once
    per distinct schema (agents send the same tools with every request)."""
    return _compiled(json.dumps(schema, sort_keys=True))


@lru_cache(maxsize=512)
def _compiled(text: str) -> jsonschema.protocols.Validator:
    schema = json.loads(text)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, registry=_OFFLINE)
