"""Bearer tokens and login rate limiting for the API (21 CFR 11.10(d), 11.300).

* Tokens are `v1.<payload>.<HMAC-SHA256>` with an expiry; the key is random per data directory,
  kept in `DATA_DIR/api-token.key` with mode 0600. Logout revokes a token by its id (the users
  store keeps the revocations).
* Logins are rate limited per user name and per client address: after `max_failures` failures in
  `window_s`, further attempts are refused (HTTP 429) until the oldest failure leaves the window.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gateway.records.users import AuthError, RateLimited

DEFAULT_TOKEN_TTL_S = 8 * 3600.0


# -- tokens -----------------------------------------------------------------------------------
def load_or_create_key(path: Path) -> bytes:
    """The token signing key for a data directory: 32 random bytes, file mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        fd = -1
    if fd < 0:
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
        key = path.read_bytes()
        if len(key) < 32:
            raise ValueError(f"{path}: token key is too short; delete it to make a new one")
        return key
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
        f.flush()
        os.fsync(f.fileno())
    return key


def _b64e(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def _b64d(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


@dataclass(frozen=True, slots=True)
class TokenClaims:
    sub: str
    iat_ns: int
    exp_ns: int
    jti: str


class TokenSigner:
    def __init__(self, key: bytes, ttl_s: float = DEFAULT_TOKEN_TTL_S) -> None:
        self._key = key
        self.ttl_ns = int(ttl_s * 1e9)

    def issue(self, username: str, now_ns: int | None = None) -> tuple[str, TokenClaims]:
        now = time.time_ns() if now_ns is None else now_ns
        claims = TokenClaims(username, now, now + self.ttl_ns, secrets.token_urlsafe(12))
        payload = _b64e(
            json.dumps(
                {"sub": claims.sub, "iat": claims.iat_ns, "exp": claims.exp_ns, "jti": claims.jti},
                separators=(",", ":"),
            ).encode()
        )
        return f"v1.{payload}.{self._sign(payload)}", claims

    def _sign(self, payload: str) -> str:
        return _b64e(hmac.new(self._key, f"v1.{payload}".encode(), hashlib.sha256).digest())

    def verify(self, token: str, now_ns: int | None = None) -> TokenClaims:
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != "v1" or not token.isascii():
            raise AuthError("malformed token")
        if not hmac.compare_digest(self._sign(parts[1]), parts[2]):
            raise AuthError("bad token signature")
        try:
            d = json.loads(_b64d(parts[1]))
            claims = TokenClaims(str(d["sub"]), int(d["iat"]), int(d["exp"]), str(d["jti"]))
        except (ValueError, KeyError, TypeError) as e:
            raise AuthError(f"malformed token: {e}") from None
        now = time.time_ns() if now_ns is None else now_ns
        if now >= claims.exp_ns:
            raise AuthError("token expired")
        return claims


# -- login rate limiting ----------------------------------------------------------------------
@dataclass
class LoginLimiter:
    """Sliding-window count of failed logins per key (user name, client address)."""

    max_failures: int = 5
    window_s: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _fails: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _prune(self, key: str, now: float) -> deque[float]:
        q = self._fails.get(key)
        if q is None:
            return deque()
        while q and q[0] <= now - self.window_s:
            q.popleft()
        if not q:
            del self._fails[key]
        return q

    def check(self, *keys: str) -> None:
        """Raise RateLimited if any key has used up its failures."""
        now = self.clock()
        with self._lock:
            for key in keys:
                q = self._prune(key, now)
                if len(q) >= self.max_failures:
                    raise RateLimited(max(1.0, q[0] + self.window_s - now))

    def failed(self, *keys: str) -> None:
        now = self.clock()
        with self._lock:
            if len(self._fails) > 100_000:  # bounded memory under a flood of distinct names
                self._fails.clear()
            for key in keys:
                self._fails.setdefault(key, deque()).append(now)

    def succeeded(self, username_key: str) -> None:
        with self._lock:
            self._fails.pop(username_key, None)
