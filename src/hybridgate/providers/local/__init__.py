"""The embedded llama.cpp model: prompt rendering, constrained decoding, generation."""

from hybridgate.providers.local.provider import LocalProvider

__all__ = ["LocalProvider"]
