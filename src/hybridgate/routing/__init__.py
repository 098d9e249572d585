"""Routing decides which configured model serves a request (names only)."""

from hybridgate.routing.resolve import AUTO, Choice, Routes

__all__ = ["AUTO", "Choice", "Routes"]
