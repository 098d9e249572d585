"""HTTP edge: the only code that knows client wire formats (OpenAI today)."""

from hybridgate.api.app import create_app

__all__ = ["create_app"]
