"""Users, roles and password hashing (21 CFR 11.10(d), 11.300).

* Users live in `DATA_DIR/users.sqlite`; passwords are hashed with Argon2id (argon2-cffi) and the
  hash is upgraded on the next successful login when the parameters change.
* Roles (DESIGN §3): viewer (regulator, read-only), operator (acknowledge, shelve, shipments),
  qa (close alerts, sign shipment reports, plus what operators do), admin (users, configuration,
  read). Admins do not act on alerts or sign: separation of duties between system administration
  and GxP decisions. Permissions are looked up per request from the users table, so disabling a
  user or changing a role takes effect at once, even for tokens already issued.
* Revoked bearer tokens (logout) are kept here by id; the tokens themselves are the API's
  (gateway/api/tokens.py).
"""

from __future__ import annotations

import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from gateway.core.i18n import LANGUAGES
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
    language: str | None = None
    """zh-CN or en, chosen by the user; None: the request's or the gateway's default."""

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
            "language": self.language,
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
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(users)")}
        if "language" not in columns:  # a store from before users chose a language
            self._db.execute("ALTER TABLE users ADD COLUMN language TEXT")
        # Verifying against this when the user does not exist keeps the timing the same.
        self._dummy_hash = self.hasher.hash(secrets.token_hex(16))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @staticmethod
    def _user(row: tuple[Any, ...]) -> User:
        return User(row[0], row[1], Role(row[2]), bool(row[3]), row[4], row[5], row[6])

    def get(self, username: str) -> User | None:
        with self._lock:
            row = self._db.execute(
                "SELECT username, name, role, enabled, created_at_ns, updated_at_ns, language "
                "FROM users WHERE username = ?",
                (username,),
            ).fetchone()
        return self._user(row) if row else None

    def list_users(self) -> list[User]:
        with self._lock:
            rows = self._db.execute(
                "SELECT username, name, role, enabled, created_at_ns, updated_at_ns, language "
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
        new = replace(old, enabled=enabled, updated_at_ns=now)
        return old, new

    def set_language(self, username: str, language: str | None) -> tuple[User, User]:
        """The user's language (LANGUAGES, or None for the default); returns (old, new)."""
        old = self.get(username)
        if old is None:
            raise KeyError(username)
        if language is not None and language not in LANGUAGES:
            raise UserError(f"language must be one of {', '.join(LANGUAGES)}")
        now = time.time_ns()
        with self._lock:
            self._db.execute(
                "UPDATE users SET language = ?, updated_at_ns = ? WHERE username = ?",
                (language, now, username),
            )
        return old, replace(old, language=language, updated_at_ns=now)

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
