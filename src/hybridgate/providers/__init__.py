"""Providers: the only code that knows an upstream's wire format."""

from hybridgate.providers.base import Provider

__all__ = ["Provider"]
