"""The model catalog: a versioned data file shipped in the package."""

from __future__ import annotations

from functools import cache
from importlib import resources

import msgspec
import yaml
from msgspec import Struct


class Part(Struct, frozen=True):
    package: str
    version: str
    member: str  # path of the byte chunk inside the wheel


class CatalogModel(Struct, frozen=True):
    name: str
    description: str
    chat: bool
    context_length: int
    license: str
    size: int
    sha256: str
    parts: tuple[Part, ...]


@cache
def load_catalog() -> dict[str, CatalogModel]:
    text = resources.files("hybridgate.models").joinpath("catalog.yaml").read_text("utf-8")
    entries = msgspec.convert(yaml.safe_load(text)["models"], list[CatalogModel])
    return {m.name: m for m in entries}


def get_model(name: str) -> CatalogModel | None:
    return load_catalog().get(name)
