"""Gateway keys: who is asking, and which models their tenant may be served by.

Keys are kept only as SHA-256 digests: the presented key is hashed once and looked up
in a dict, so no secret stays in memory and no comparison leaks timing about one.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from hybridgate.config.settings import Config
from hybridgate.core.errors import AuthenticationFailed

KEY_PREFIX = "hg-"


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: its key id (for the ledger), tenant, and allowlist (None: all)."""

    key_id: str | None
    tenant: str | None
    allowed: frozenset[str] | None


ANONYMOUS = Principal(None, None, None)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh random key (256 bits), prefixed so it is recognisable in a secret scanner."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyTable:
    """Every configured key, by digest. With no keys configured, auth is off."""

    def __init__(self, config: Config) -> None:
        allow = {t.name: (frozenset(t.models) if t.models is not None else None)
                 for t in config.tenants}
        self.by_digest: dict[str, Principal] = {}
        for k in config.keys:
            d = (k.key_sha256 or "").lower() or digest(k.key or "")
            if d in self.by_digest:
                raise ValueError(f"key {k.id!r} has the same secret as key "
                                 f"{self.by_digest[d].key_id!r}")
            self.by_digest[d] = Principal(k.id, k.tenant, allow.get(k.tenant or ""))

    @property
    def enabled(self) -> bool:
        return bool(self.by_digest)

    def authenticate(self, authorization: str | None, api_key: str | None = None
                     ) -> Principal:
        """From ``Authorization: Bearer <key>`` (or ``x-api-key``, as Anthropic's SDK
        sends it)."""
        if not self.by_digest:
            return ANONYMOUS
        key = api_key
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() == "bearer":
                key = value.strip()
        if not key:
            raise AuthenticationFailed(
                "no API key given: send it as 'Authorization: Bearer <key>'")
        found = self.by_digest.get(digest(key))
        if found is None:
            raise AuthenticationFailed("incorrect API key provided")
        return found
