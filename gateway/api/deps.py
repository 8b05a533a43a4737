"""Authentication and permission dependencies shared by the routers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.api.context import ApiContext
from gateway.api.tokens import TokenClaims
from gateway.core.i18n import negotiate
from gateway.records.reports import BOM
from gateway.records.users import AuthError, Perm, User

bearer = HTTPBearer(auto_error=False, description="token from POST /auth/login")


def get_ctx(request: Request) -> ApiContext:
    return request.app.state.ctx


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@dataclass(frozen=True, slots=True)
class Principal:
    user: User
    claims: TokenClaims
    client: str


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"}
    )


async def current_principal(
    request: Request,
    creds: HTTPAuthorizationCredentials | None = Depends(bearer),
) -> Principal:
    """The token's user, looked up now: a disabled user's tokens stop working at once."""
    if creds is None:
        raise _unauthorized("a bearer token is required (POST /auth/login)")
    ctx = get_ctx(request)
    try:
        claims = ctx.tokens.verify(creds.credentials)
    except AuthError as e:
        raise _unauthorized(str(e)) from None
    if ctx.users.is_revoked(claims.jti):
        raise _unauthorized("token was revoked (logged out)")
    user = ctx.users.get(claims.sub)
    if user is None or not user.enabled:
        raise _unauthorized("user is unknown or disabled")
    return Principal(user, claims, client_of(request))


def require(perm: Perm) -> Callable[..., Awaitable[Principal]]:
    """Dependency: the caller must hold `perm` (403 otherwise). The returned function carries
    `.perm`, which the route-walking test reads to know what each route needs."""

    async def dep(p: Principal = Depends(current_principal)) -> Principal:
        if not p.user.can(perm):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role {p.user.role} lacks the permission {perm}",
            )
        return p

    dep.perm = perm  # type: ignore[attr-defined]
    dep.__name__ = f"require_{perm.value.replace('.', '_')}"
    return dep


@dataclass(frozen=True, slots=True)
class Display:
    """How a response shows texts and times: the reader's language and the gateway's zone."""

    lang: str
    tz: str


def display_of(request: Request, p: Principal | None, lang: str | None = None) -> Display:
    """`lang` (a request's `?lang=`) first, then the user's own choice, then Accept-Language,
    then gateway.language."""
    ctx = get_ctx(request)
    chosen = negotiate(
        lang,
        p.user.language if p is not None else None,
        accept_language=request.headers.get("accept-language"),
        default=ctx.language,
    )
    return Display(chosen, ctx.timezone)


LangQuery = Annotated[
    Literal["zh-CN", "en"] | None,
    Query(description="language of texts (default: the user's, Accept-Language, the gateway's)"),
]


def route_permission(route: object) -> Perm | None:
    """The permission a route's dependencies require (None: no token needed)."""
    dependant = getattr(route, "dependant", None)
    stack = [dependant] if dependant is not None else []
    while stack:
        d = stack.pop()
        perm = getattr(d.call, "perm", None)
        if perm is not None:
            return perm
        stack.extend(d.dependencies)
    return None


async def report_download(
    name: str, format: Literal["pdf", "csv"], csv: Callable[[], str], pdf: Callable[[], bytes]
) -> Response:
    """A report as an attachment named `name`: CSV with a byte-order mark (spreadsheets then
    read Chinese), PDF rendered in a worker thread (it takes tenths of a second)."""
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if format == "csv":
        return Response(BOM + csv(), media_type="text/csv; charset=utf-8", headers=headers)
    body = await asyncio.to_thread(pdf)
    return Response(body, media_type="application/pdf", headers=headers)
