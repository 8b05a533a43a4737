"""Users, password hashing, tokens, roles and login rate limiting."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest

from gateway.api.tokens import LoginLimiter, TokenSigner, load_or_create_key
from gateway.records.users import (
    ROLE_PERMS,
    AuthError,
    Perm,
    RateLimited,
    Role,
    UserError,
    UserStore,
)
from tests.api_rig import FAST_HASHER


@pytest.fixture
def users(tmp_path: Path) -> UserStore:
    return UserStore(tmp_path / "users.sqlite", hasher=FAST_HASHER)


def test_passwords_are_stored_as_argon2id_hashes(users: UserStore) -> None:
    users.add("olga", "Olga Operator", "operator", "correct horse battery")
    raw = users._db.execute("SELECT password_hash FROM users").fetchone()[0]
    assert raw.startswith("$argon2id$") and "correct horse" not in raw
    u = users.verify_password("olga", "correct horse battery")
    assert u.role is Role.OPERATOR and u.name == "Olga Operator"


@pytest.mark.parametrize(
    ("username", "password"),
    [("olga", "wrong password!"), ("nobody", "correct horse battery"), ("olga", "")],
)
def test_bad_logins_fail_alike(users: UserStore, username: str, password: str) -> None:
    users.add("olga", "Olga", "operator", "correct horse battery")
    with pytest.raises(AuthError, match="wrong user name or password"):
        users.verify_password(username, password)


def test_disabled_user_cannot_log_in_and_loses_permissions(users: UserStore) -> None:
    users.add("olga", "Olga", "qa", "correct horse battery")
    old, new = users.set_enabled("olga", False)
    assert old.enabled and not new.enabled and new.perms == frozenset()
    with pytest.raises(AuthError):
        users.verify_password("olga", "correct horse battery")
    users.set_enabled("olga", True)
    assert users.verify_password("olga", "correct horse battery").can(Perm.ALERT_CLOSE)


@pytest.mark.parametrize(
    ("username", "role", "password", "match"),
    [
        ("olga", "operator", "short", "at least 10"),
        ("olga", "boss", "long enough password", "unknown role"),
        ("o", "operator", "long enough password", "user name"),
        ("bad name", "operator", "long enough password", "user name"),
        ("olga", "operator", " long enough password", "spaces"),
    ],
)
def test_user_validation(
    users: UserStore, username: str, role: str, password: str, match: str
) -> None:
    with pytest.raises(UserError, match=match):
        users.add(username, "Olga", role, password)


def test_duplicate_user_is_refused(users: UserStore) -> None:
    users.add("olga", "Olga", "viewer", "long enough password")
    with pytest.raises(UserError, match="already exists"):
        users.add("olga", "Other Olga", "admin", "long enough password")


def test_rehash_on_login_when_parameters_change(tmp_path: Path) -> None:
    from argon2 import PasswordHasher

    old = UserStore(tmp_path / "u.sqlite", hasher=FAST_HASHER)
    old.add("olga", "Olga", "viewer", "long enough password")
    stronger = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1)
    new = UserStore(tmp_path / "u.sqlite", hasher=stronger)
    new.verify_password("olga", "long enough password")
    raw = new._db.execute("SELECT password_hash FROM users").fetchone()[0]
    assert "m=2048,t=2" in raw
    new.verify_password("olga", "long enough password")


def test_roles_and_permissions() -> None:
    assert ROLE_PERMS[Role.VIEWER] == {Perm.READ}
    assert Perm.ALERT_ACK in ROLE_PERMS[Role.OPERATOR]
    assert Perm.ALERT_CLOSE not in ROLE_PERMS[Role.OPERATOR]
    assert {Perm.ALERT_CLOSE, Perm.REPORT_SIGN} <= ROLE_PERMS[Role.QA]
    assert Perm.USERS in ROLE_PERMS[Role.ADMIN]
    # separation of duties: administrators do not make GxP decisions
    assert not {Perm.ALERT_CLOSE, Perm.REPORT_SIGN, Perm.ALERT_ACK} & ROLE_PERMS[Role.ADMIN]


def test_token_round_trip_expiry_and_tampering() -> None:
    signer = TokenSigner(b"k" * 32, ttl_s=60)
    token, claims = signer.issue("olga", now_ns=1_000)
    assert signer.verify(token, now_ns=2_000) == claims
    with pytest.raises(AuthError, match="expired"):
        signer.verify(token, now_ns=1_000 + 60 * 10**9)
    head, payload, sig = token.split(".")
    forged = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    with pytest.raises(AuthError, match="signature"):
        signer.verify(f"{head}.{forged}.{sig}", now_ns=2_000)
    with pytest.raises(AuthError, match="signature"):
        TokenSigner(b"x" * 32).verify(token, now_ns=2_000)
    for junk in ("", "v1", "v1.a.b.c", "v2.a.b", "v1.é.b"):
        with pytest.raises(AuthError):
            signer.verify(junk)


def test_token_key_is_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "data" / "api-token.key"
    key = load_or_create_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key
    path.chmod(0o644)
    assert load_or_create_key(path) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_revocation(users: UserStore) -> None:
    users.revoke("jti-1", time.time_ns() + 10**12)
    users.revoke("old", time.time_ns() - 1)
    assert users.is_revoked("jti-1") and not users.is_revoked("jti-2")
    users.revoke("jti-3", time.time_ns() + 10**12)  # prunes expired entries
    assert not users.is_revoked("old")


def test_limiter_sliding_window() -> None:
    now = [0.0]
    lim = LoginLimiter(max_failures=3, window_s=60, clock=lambda: now[0])
    for _ in range(3):
        lim.check("user:olga", "ip:1")
        lim.failed("user:olga", "ip:1")
        now[0] += 10
    with pytest.raises(RateLimited) as e:
        lim.check("user:olga")
    assert 30 <= e.value.retry_after_s <= 31
    with pytest.raises(RateLimited):
        lim.check("user:someone-else", "ip:1")  # the address is limited too
    lim.check("user:someone-else", "ip:2")
    now[0] = 61.0  # the first failure left the window
    lim.check("user:olga", "ip:1")
    lim.succeeded("user:olga")
    now[0] = 62.0
    lim.check("user:olga")
