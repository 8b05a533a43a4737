"""Login, logout, the caller's own account, and user administration (admin)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request, status

from gateway.api.deps import Principal, client_of, display_of, get_ctx, require
from gateway.api.models import (
    LanguageIn,
    LoginIn,
    MeOut,
    PasswordChangeIn,
    ReasonIn,
    TokenOut,
    UserIn,
    UserOut,
    ns_to_dt,
)
from gateway.records.users import AuthError, Perm, RateLimited, User, UserError

router = APIRouter(tags=["auth"])
users_router = APIRouter(prefix="/api/v1/users", tags=["users"])

Username = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")]


def user_out(u: User) -> UserOut:
    return UserOut(
        username=u.username,
        name=u.name,
        role=str(u.role),
        enabled=u.enabled,
        permissions=sorted(str(p) for p in u.perms),
        language=u.language,
    )


@router.post(
    "/auth/login",
    response_model=TokenOut,
    summary="Log in: user name and password for a bearer token",
    responses={
        401: {"description": "wrong user name or password"},
        429: {"description": "too many failed logins"},
    },
)
async def login(request: Request, body: LoginIn) -> TokenOut:
    ctx = get_ctx(request)
    client = client_of(request)
    keys = (f"user:{body.username}", f"ip:{client}")
    try:
        ctx.limiter.check(*keys)
    except RateLimited as e:
        ctx.count("logins_rate_limited")
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            str(e),
            headers={"Retry-After": str(int(e.retry_after_s) + 1)},
        ) from None
    try:
        user = await asyncio.to_thread(ctx.users.verify_password, body.username, body.password)
    except AuthError as e:
        ctx.limiter.failed(*keys)
        ctx.count("logins_failed")
        await asyncio.to_thread(
            ctx.audit.record,
            body.username,
            "login.failed",
            "user",
            body.username,
            None,
            None,
            str(e),
            None,
            client,
        )
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "wrong user name or password, or the user is disabled"
        ) from None
    ctx.limiter.succeeded(keys[0])
    ctx.count("logins_ok")
    token, claims = ctx.tokens.issue(user.username)
    expires = ns_to_dt(claims.exp_ns)
    await asyncio.to_thread(
        ctx.audit.record,
        user.username,
        "login",
        "user",
        user.username,
        None,
        {"token_id": claims.jti, "expires_at": expires.isoformat()},
        None,
        None,
        client,
    )
    return TokenOut(access_token=token, expires_at=expires, user=user_out(user))


@router.post("/api/v1/auth/logout", status_code=204, summary="Revoke this token")
async def logout(request: Request, p: Annotated[Principal, Depends(require(Perm.READ))]) -> None:
    ctx = get_ctx(request)
    ctx.users.revoke(p.claims.jti, p.claims.exp_ns)
    await asyncio.to_thread(
        ctx.audit.record,
        p.user.username,
        "logout",
        "user",
        p.user.username,
        {"token_id": p.claims.jti},
        None,
        None,
        None,
        p.client,
    )


@router.get("/api/v1/me", response_model=MeOut, summary="The logged-in user and permissions")
async def me(request: Request, p: Annotated[Principal, Depends(require(Perm.READ))]) -> MeOut:
    d = display_of(request, p)
    return MeOut(
        **user_out(p.user).model_dump(),
        display_language=d.lang,
        timezone=d.tz,
        gateway=get_ctx(request).gateway_name,
    )


@router.post("/api/v1/me/language", response_model=UserOut, summary="Choose one's language")
async def set_language(
    request: Request,
    body: LanguageIn,
    p: Annotated[Principal, Depends(require(Perm.READ))],
) -> UserOut:
    ctx = get_ctx(request)
    old, new = await asyncio.to_thread(ctx.users.set_language, p.user.username, body.language)
    await asyncio.to_thread(
        ctx.audit.record,
        p.user.username,
        "user.language",
        "user",
        p.user.username,
        {"language": old.language},
        {"language": new.language},
        None,
        None,
        p.client,
    )
    return user_out(new)


@router.post("/api/v1/me/password", status_code=204, summary="Change one's own password")
async def change_password(
    request: Request,
    body: PasswordChangeIn,
    p: Annotated[Principal, Depends(require(Perm.READ))],
) -> None:
    ctx = get_ctx(request)
    key = f"user:{p.user.username}"
    try:
        ctx.limiter.check(key)
        await asyncio.to_thread(ctx.users.verify_password, p.user.username, body.old_password)
    except RateLimited as e:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, str(e)) from None
    except AuthError:
        ctx.limiter.failed(key)
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the old password does not match") from None
    try:
        await asyncio.to_thread(ctx.users.set_password, p.user.username, body.new_password)
    except UserError as e:
        raise HTTPException(422, str(e)) from None
    await asyncio.to_thread(
        ctx.audit.record,
        p.user.username,
        "user.password",
        "user",
        p.user.username,
        None,
        None,
        "changed by the user",
        None,
        p.client,
    )


# -- administration ---------------------------------------------------------------------------
@users_router.get("", response_model=list[UserOut], summary="List users (admin)")
async def list_users(
    request: Request, _: Annotated[Principal, Depends(require(Perm.USERS))]
) -> list[UserOut]:
    return [user_out(u) for u in get_ctx(request).users.list_users()]


@users_router.post("", response_model=UserOut, status_code=201, summary="Add a user (admin)")
async def add_user(
    request: Request,
    body: UserIn,
    p: Annotated[Principal, Depends(require(Perm.USERS))],
) -> UserOut:
    ctx = get_ctx(request)
    try:
        user = await asyncio.to_thread(
            ctx.users.add, body.username, body.name, body.role, body.password
        )
    except UserError as e:
        code = status.HTTP_409_CONFLICT if "already exists" in str(e) else 422
        raise HTTPException(code, str(e)) from None
    await asyncio.to_thread(
        ctx.audit.record,
        p.user.username,
        "user.add",
        "user",
        user.username,
        None,
        user.public(),
        None,
        None,
        p.client,
    )
    return user_out(user)


async def _set_enabled(
    request: Request, p: Principal, username: str, enabled: bool, reason: str
) -> UserOut:
    ctx = get_ctx(request)
    if username == p.user.username and not enabled:
        raise HTTPException(status.HTTP_409_CONFLICT, "an admin cannot disable their own account")
    try:
        old, new = ctx.users.set_enabled(username, enabled)
    except KeyError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no user {username}") from None
    action = "user.enable" if enabled else "user.disable"
    await asyncio.to_thread(
        ctx.audit.record,
        p.user.username,
        action,
        "user",
        username,
        old.public(),
        new.public(),
        reason,
        None,
        p.client,
    )
    return user_out(new)


@users_router.post("/{username}/disable", response_model=UserOut, summary="Disable (admin)")
async def disable_user(
    request: Request,
    username: Username,
    body: ReasonIn,
    p: Annotated[Principal, Depends(require(Perm.USERS))],
) -> UserOut:
    return await _set_enabled(request, p, username, False, body.reason)


@users_router.post("/{username}/enable", response_model=UserOut, summary="Enable (admin)")
async def enable_user(
    request: Request,
    username: Username,
    body: ReasonIn,
    p: Annotated[Principal, Depends(require(Perm.USERS))],
) -> UserOut:
    return await _set_enabled(request, p, username, True, body.reason)
