"""Guards on client text before it leaves the premises: personal-data detection and
residency."""

from hybridgate.guard.pii import detect, outbound_text

__all__ = ["detect", "outbound_text"]
