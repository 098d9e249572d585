"""Gateway keys: who is asking, and which models their tenant may be served by.

Keys are kept only as SHA-256 digests: the presented key is hashed once and looked up
in a dict, so no secret stays in memory and no comparison leaks timing about one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from hybridgate.config.settings import Config
from hybridgate.core.errors import AuthenticationFailed, PermissionDenied

KEY_PREFIX = "hg-"


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: its key id (for the ledger), tenant, and allowlist (None: all)."""

    key_id: str | None
    tenant: str | None
    allowed: frozenset[str] | None
    admin: bool = False  # may read /metrics and the dashboard


ANONYMOUS = Principal(None, None, None, admin=True)  # no keys: a loopback gateway


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
        self.digest_of: dict[str, str] = {}  # key id -> digest (dashboard sessions)
        for k in config.keys:
            d = (k.key_sha256 or "").lower() or digest(k.key or "")
            if d in self.by_digest:
                raise ValueError(f"key {k.id!r} has the same secret as key "
                                 f"{self.by_digest[d].key_id!r}")
            self.by_digest[d] = Principal(k.id, k.tenant, allow.get(k.tenant or ""), k.admin)
            self.digest_of[k.id] = d

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

    def authenticate_admin(self, authorization: str | None, api_key: str | None = None
                           ) -> Principal:
        """An admin key (``admin: true``); 401 without a valid key, 403 with another."""
        who = self.authenticate(authorization, api_key)
        if not who.admin:
            raise PermissionDenied("this needs an admin key (keys[].admin: true)")
        return who

    # Dashboard sessions: a browser cannot send a bearer key, so signing in with an admin
    # key sets a cookie "<key id>.<expiry>.<HMAC>", keyed by that key's digest. Any
    # replica with the same config checks it; removing the key ends its sessions.

    def session(self, who: Principal, seconds: int, now: float | None = None) -> str:
        expiry = int((time.time() if now is None else now) + seconds)
        return f"{who.key_id}.{expiry}.{self._sign(who.key_id or '', expiry)}"

    def _sign(self, key_id: str, expiry: int) -> str:
        secret = self.digest_of.get(key_id, "")
        return hmac.new(secret.encode(), f"ui:{key_id}:{expiry}".encode(),
                        hashlib.sha256).hexdigest()

    def from_session(self, token: str, now: float | None = None) -> Principal | None:
        """The admin a session cookie belongs to, or None (forged, expired, revoked)."""
        parts = token.rsplit(".", 2)  # a key id may hold dots
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        key_id, expiry, mac = parts[0], int(parts[1]), parts[2]
        if expiry < (time.time() if now is None else now) or key_id not in self.digest_of:
            return None
        if not hmac.compare_digest(mac, self._sign(key_id, expiry)):
            return None
        who = self.by_digest[self.digest_of[key_id]]
        return who if who.admin else None
