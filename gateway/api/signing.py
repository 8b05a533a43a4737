"""Electronic signatures (21 CFR 11.50, 11.200): the signer enters the password again.

The signer is the token's user (the first component); the password is the second, checked
afresh for every signature. A wrong password is audited and counts towards the login rate
limit of that user, so a stolen token cannot be used to guess the password by signing.
"""

from __future__ import annotations

import asyncio

from fastapi import HTTPException, Request, status

from gateway.api.deps import Principal, get_ctx
from gateway.records.users import AuthError, RateLimited


async def verify_signature(
    request: Request, p: Principal, password: str, entity: str, entity_id: str
) -> None:
    ctx = get_ctx(request)
    key = f"user:{p.user.username}"
    try:
        ctx.limiter.check(key)
    except RateLimited as e:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            str(e),
            headers={"Retry-After": str(int(e.retry_after_s) + 1)},
        ) from None
    try:
        await asyncio.to_thread(ctx.users.verify_password, p.user.username, password)
    except AuthError:
        ctx.limiter.failed(key)
        ctx.count("signature_failures")
        await asyncio.to_thread(
            ctx.audit.record,
            p.user.username,
            "signature.failed",
            entity,
            entity_id,
            None,
            None,
            "password entered for the signature did not match",
            None,
            p.client,
        )
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "signature refused: the password does not match"
        ) from None
