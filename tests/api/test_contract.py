"""Contract test: schemathesis drives the gateway from OpenAI's own OpenAPI spec.

Limited to chat completions, completions, embeddings and models. The spec lists only
200 (and 429) responses, so the status-code check is off; what must hold is no 5xx
and every response (success or error) matching the spec where it defines one.
Generated requests are pointed at configured models so they reach real routing: chat
and completions at the fake OpenAI upstream, embeddings at the local MiniLM.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from tests.conftest import SHARED_DATA

SPEC = SHARED_DATA / "openai-openapi" / "openapi.yaml"

if not SPEC.exists():  # pragma: no cover - the shared data is part of the workspace
    pytest.skip(f"OpenAI spec not found at {SPEC}", allow_module_level=True)

spec = schemathesis.openapi.from_path(str(SPEC))
schema = spec.include(path=["/chat/completions", "/completions", "/embeddings"], method="POST")
models_schema = spec.include(path="/models", method="GET")

# Gateway keys (auth) belong to the governance layer; zero-config runs without them, so the
# spec's auth checks do not apply here. What we hold ourselves to:
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]

TARGET = {"/chat/completions": "gpt-fake", "/completions": "gpt-fake",
          "/embeddings": "all-MiniLM-L6-v2"}


@schema.parametrize()
@settings(max_examples=40, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_openai_contract(case, gateway):
    if isinstance(case.body, dict) and "model" in case.body:
        case.body["model"] = TARGET.get(case.path, case.body["model"])
    case.call_and_validate(base_url=gateway.v1, checks=CHECKS)


@models_schema.parametrize()
@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
def test_openai_contract_models(case, gateway):
    case.call_and_validate(base_url=gateway.v1, checks=CHECKS)
