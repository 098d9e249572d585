"""Answer caches: the exact tier (``cache.exact``)."""
