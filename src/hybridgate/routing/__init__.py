"""Routing: which configured model serves a request."""

from hybridgate.routing.resolve import Models

__all__ = ["Models"]
