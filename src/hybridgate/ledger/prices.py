"""The price catalog (prices.yaml in the package) plus the user's overrides."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

from hybridgate.config.settings import PriceOverride


@dataclass(frozen=True)
class Price:
    """USD per 1M tokens."""

    id: str
    input: float
    output: float
    cached_input: float | None = None
    source: str = ""
    read: str = ""

    def cost(self, prompt_tokens: int, cached_tokens: int, completion_tokens: int) -> float:
        """Cached prompt tokens are billed at the cached rate (or the input rate if none)."""
        cached = min(cached_tokens, prompt_tokens)
        cached_rate = self.cached_input if self.cached_input is not None else self.input
        return ((prompt_tokens - cached) * self.input + cached * cached_rate
                + completion_tokens * self.output) / 1_000_000


@cache
def _catalog() -> tuple[dict[str, Any], ...]:
    text = resources.files("hybridgate.ledger").joinpath("prices.yaml").read_text("utf-8")
    return tuple(yaml.safe_load(text)["models"])


class PriceBook:
    def __init__(self, overrides: list[PriceOverride] | None = None) -> None:
        self.prices: dict[str, Price] = {}
        for doc in _catalog():
            self.prices[doc["id"]] = Price(id=doc["id"], input=doc["input"], output=doc["output"],
                                           cached_input=doc.get("cached_input"),
                                           source=doc.get("source", ""),
                                           read=str(doc.get("read", "")))
        for o in overrides or []:
            self.prices[o.id] = Price(id=o.id, input=o.input, output=o.output,
                                      cached_input=o.cached_input, source=o.source)

    def lookup(self, *names: str | None) -> Price | None:
        """First known name wins: try the gateway's model name, then the upstream's."""
        for name in names:
            if name and name in self.prices:
                return self.prices[name]
        return None
