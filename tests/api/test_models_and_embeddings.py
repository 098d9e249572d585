"""/v1/models, /v1/embeddings (real MiniLM), /healthz and /readyz."""

from __future__ import annotations

import base64

import numpy as np
import requests


def test_models_list(client):
    ids = {m.id for m in client.models.list()}
    assert {"smollm2-135m-instruct", "gpt-fake", "claude-fake", "all-MiniLM-L6-v2",
            "auto"} <= ids
    assert client.models.retrieve("gpt-fake").id == "gpt-fake"


def test_health_and_ready(gateway):
    assert requests.get(gateway.url + "/healthz").json() == {"status": "ok"}
    ready = requests.get(gateway.url + "/readyz").json()
    assert ready["ready"] is True and ready["models"]["smollm2-135m-instruct"] is True


def test_real_embeddings_capture_meaning(client):
    texts = ["The cat sat on the mat.", "A kitten is sitting on a rug.",
             "Quarterly revenue grew by eight percent."]
    r = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts)
    v = np.array([d.embedding for d in r.data])
    assert v.shape == (3, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-4)
    sim = v @ v.T
    assert sim[0, 1] > 0.5 > sim[0, 2]
    assert r.usage.prompt_tokens == r.usage.total_tokens > 10


def test_embeddings_base64_matches_float(client):
    f = client.embeddings.create(model="all-MiniLM-L6-v2", input="hello world")
    raw = requests.post(client.base_url.__str__().rstrip("/") + "/embeddings", json={
        "model": "all-MiniLM-L6-v2", "input": "hello world",
        "encoding_format": "base64"}).json()
    decoded = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(decoded, f.data[0].embedding, atol=1e-6)


def test_embeddings_via_openai_upstream_flag_off_is_400(client):
    import openai
    import pytest
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="gpt-fake", input="x")
