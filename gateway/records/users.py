"""Users, roles, password hashing, bearer tokens and login rate limiting (21 CFR 11.10(d), 11.300).

* Users live in `DATA_DIR/users.sqlite`; passwords are hashed with Argon2id (argon2-cffi) and the
  hash is upgraded on the next successful login when the parameters change.
* Roles (DESIGN §3): viewer (regulator, read-only), operator (acknowledge, shelve, shipments),
  qa (close alerts, sign shipment reports, plus what operators do), admin (users, configuration,
  read). Admins do not act on alerts or sign: separation of duties between system administration
  and GxP decisions. Permissions are looked up per request from the users table, so disabling a
  user or changing a role takes effect at once, even for tokens already issued.
* Tokens are `v1.<payload>.<HMAC-SHA256>` with an expiry; the key is random per data directory,
  kept in `DATA_DIR/api-token.key` with mode 0600. Logout revokes a token by its id.
* Logins are rate limited per user name and per client address: after `max_failures` failures in
  `window_s`, further attempts are refused (HTTP 429) until the oldest failure leaves the window.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from gateway.core.sqlite import connect


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    QA = "qa"
    ADMIN = "admin"


class Perm(StrEnum):
    READ = "read"
    """Alerts, devices, readings, shipments, reports, the audit trail."""
    ALERT_ACK = "alert.ack"
    ALERT_SHELVE = "alert.shelve"
    ALERT_CLOSE = "alert.close"
    SHIPMENT_WRITE = "shipment.write"
    REPORT_SIGN = "report.sign"
    USERS = "users"
    CONFIG = "config"


ROLE_PERMS: dict[Role, frozenset[Perm]] = {
    Role.VIEWER: frozenset({Perm.READ}),
    Role.OPERATOR: frozenset({Perm.READ, Perm.ALERT_ACK, Perm.ALERT_SHELVE, Perm.SHIPMENT_WRITE}),
    Role.QA: frozenset(
        {
            Perm.READ,
            Perm.ALERT_ACK,
            Perm.ALERT_SHELVE,
            Perm.SHIPMENT_WRITE,
            Perm.ALERT_CLOSE,
            Perm.REPORT_SIGN,
        }
    ),
    Role.ADMIN: frozenset({Perm.READ, Perm.USERS, Perm.CONFIG}),
}

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{1,63}$")
MIN_PASSWORD = 10
DEFAULT_TOKEN_TTL_S = 8 * 3600.0
"""One shift."""


class AuthError(Exception):
    """Wrong user name or password, disabled user, bad or expired token."""


class UserError(ValueError):
    """A user change that is not allowed (the message says why)."""


class RateLimited(Exception):
    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"too many failed logins; retry in {retry_after_s:.0f} s")
        self.retry_after_s = retry_after_s


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"password must be at least {MIN_PASSWORD} characters")
    if password.strip() != password or not password.isprintable():
        raise UserError("password must not start or end with spaces or hold control characters")


@dataclass(frozen=True, slots=True)
class User:
    username: str
    name: str
    """Printed name, shown in signatures (21 CFR 11.50)."""
    role: Role
    enabled: bool
    created_at_ns: int
    updated_at_ns: int

    @property
    def perms(self) -> frozenset[Perm]:
        return ROLE_PERMS[self.role] if self.enabled else frozenset()

    def can(self, perm: Perm) -> bool:
        return perm in self.perms

    def public(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "name": self.name,
            "role": str(self.role),
            "enabled": self.enabled,
        }


_USERS_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    created_at_ns INTEGER NOT NULL,
    updated_at_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS revoked_tokens (
    jti TEXT PRIMARY KEY,
    expires_ns INTEGER NOT NULL
);
"""


def default_hasher() -> PasswordHasher:
    """Argon2id with argon2-cffi's defaults (RFC 9106 low-memory: t=3, m=64 MiB, p=4)."""
    return PasswordHasher()


class UserStore:
    """The users table. Blocking SQLite calls, safe from any thread (the API uses worker threads
    for hashing, which is deliberately slow)."""

    def __init__(self, path: Path | str, hasher: PasswordHasher | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.hasher = hasher or default_hasher()
        self._lock = threading.Lock()
        self._db = connect(self.path, synchronous="FULL")
        self._db.executescript(_USERS_SCHEMA)
        # Verifying against this when the user does not exist keeps the timing the same.
        self._dummy_hash = self.hasher.hash(secrets.token_hex(16))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @staticmethod
    def _user(row: tuple[Any, ...]) -> User:
        return User(row[0], row[1], Role(row[2]), bool(row[3]), row[4], row[5])

    def get(self, username: str) -> User | None:
        with self._lock:
            row = self._db.execute(
                "SELECT username, name, role, enabled, created_at_ns, updated_at_ns "
                "FROM users WHERE username = ?",
                (username,),
            ).fetchone()
        return self._user(row) if row else None

    def list_users(self) -> list[User]:
        with self._lock:
            rows = self._db.execute(
                "SELECT username, name, role, enabled, created_at_ns, updated_at_ns "
                "FROM users ORDER BY username"
            ).fetchall()
        return [self._user(r) for r in rows]

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM users").fetchone()[0])

    def add(self, username: str, name: str, role: Role | str, password: str) -> User:
        if not USERNAME_RE.match(username):
            raise UserError(
                "user name must be 2-64 characters: letters, digits, '_', '.', '@', '-'"
            )
        try:
            role = Role(role)
        except ValueError:
            raise UserError(f"unknown role {role!r} (known: {', '.join(Role)})") from None
        name = name.strip()
        if not name or not name.isprintable() or len(name) > 200:
            raise UserError("the printed name must be 1-200 printable characters")
        check_password_policy(password)
        hashed = self.hasher.hash(password)
        now = time.time_ns()
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO users (username, name, role, password_hash, enabled, "
                    "created_at_ns, updated_at_ns) VALUES (?, ?, ?, ?, 1, ?, ?)",
                    (username, name, str(role), hashed, now, now),
                )
            except sqlite3.IntegrityError:
                raise UserError(f"user {username!r} already exists") from None
        return User(username, name, role, True, now, now)

    def set_enabled(self, username: str, enabled: bool) -> tuple[User, User]:
        """Returns (old, new). User names are never reused: users are disabled, not deleted."""
        old = self.get(username)
        if old is None:
            raise KeyError(username)
        now = time.time_ns()
        with self._lock:
            self._db.execute(
                "UPDATE users SET enabled = ?, updated_at_ns = ? WHERE username = ?",
                (int(enabled), now, username),
            )
        new = User(old.username, old.name, old.role, enabled, old.created_at_ns, now)
        return old, new

    def set_password(self, username: str, password: str) -> None:
        if self.get(username) is None:
            raise KeyError(username)
        check_password_policy(password)
        hashed = self.hasher.hash(password)
        with self._lock:
            self._db.execute(
                "UPDATE users SET password_hash = ?, updated_at_ns = ? WHERE username = ?",
                (hashed, time.time_ns(), username),
            )

    def verify_password(self, username: str, password: str) -> User:
        """The enabled user with this password, or AuthError (the same for every failure)."""
        with self._lock:
            row = self._db.execute(
                "SELECT password_hash FROM users WHERE username = ?", (username,)
            ).fetchone()
        stored = row[0] if row else self._dummy_hash
        try:
            self.hasher.verify(stored, password)
            ok = row is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
        user = self.get(username) if ok else None
        if user is None or not user.enabled:
            raise AuthError("wrong user name or password, or the user is disabled")
        if self.hasher.check_needs_rehash(stored):
            with self._lock:
                self._db.execute(
                    "UPDATE users SET password_hash = ? WHERE username = ?",
                    (self.hasher.hash(password), username),
                )
        return user

    # -- token revocation ---------------------------------------------------------------------
    def revoke(self, jti: str, expires_ns: int) -> None:
        now = time.time_ns()
        with self._lock:
            self._db.execute("DELETE FROM revoked_tokens WHERE expires_ns < ?", (now,))
            self._db.execute(
                "INSERT OR IGNORE INTO revoked_tokens (jti, expires_ns) VALUES (?, ?)",
                (jti, expires_ns),
            )

    def is_revoked(self, jti: str) -> bool:
        with self._lock:
            return (
                self._db.execute("SELECT 1 FROM revoked_tokens WHERE jti = ?", (jti,)).fetchone()
                is not None
            )


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
