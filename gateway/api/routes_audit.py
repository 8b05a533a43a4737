"""The audit trail, read-only: there is no route that changes or deletes a row."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from gateway.api.deps import Principal, get_ctx, require
from gateway.api.models import (
    INT64_MAX,
    AuditRowOut,
    AuditSignatureOut,
    AuditVerifyOut,
    dt_to_ns,
    ns_to_dt,
)
from gateway.records.audit import AuditRow
from gateway.records.users import Perm

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


def row_out(r: AuditRow) -> AuditRowOut:
    sig = None
    if isinstance(r.signature, dict):
        sig = AuditSignatureOut(
            name=str(r.signature.get("name", "")),
            username=str(r.signature.get("username", "")),
            meaning=str(r.signature.get("meaning", "")),
            signed_at=ns_to_dt(int(r.signature.get("signed_at_ns", r.ts_ns))),
        )
    return AuditRowOut(
        seq=r.seq,
        at=ns_to_dt(r.ts_ns),
        actor=r.actor,
        action=r.action,
        entity=r.entity,
        entity_id=r.entity_id,
        old_value=r.old_value,
        new_value=r.new_value,
        reason=r.reason,
        signature=sig,
        client=r.client,
        prev_hash=r.prev_hash,
        hash=r.hash,
    )


@router.get("", response_model=list[AuditRowOut], summary="Audit rows, oldest first")
async def audit_rows(
    request: Request,
    _: Annotated[Principal, Depends(require(Perm.READ))],
    after_seq: Annotated[int, Query(ge=0, le=INT64_MAX, description="rows after this one")] = 0,
    since: datetime | None = None,
    until: datetime | None = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[
        str | None, Query(max_length=200, description="exact, or a prefix ending in *")
    ] = None,
    entity: Annotated[str | None, Query(max_length=200)] = None,
    entity_id: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    newest_first: bool = False,
    before_seq: Annotated[
        int | None, Query(ge=1, le=INT64_MAX, description="rows before this one (paging back)")
    ] = None,
) -> list[AuditRowOut]:
    rows = await asyncio.to_thread(
        get_ctx(request).audit.rows,
        after_seq=after_seq,
        since_ns=dt_to_ns(since) if since else None,
        until_ns=dt_to_ns(until) if until else None,
        actor=actor,
        action=action,
        entity=entity,
        entity_id=entity_id,
        limit=limit,
        newest_first=newest_first,
        before_seq=before_seq,
    )
    return [row_out(r) for r in rows]


@router.get("/verify", response_model=AuditVerifyOut, summary="Check the hash chain")
async def verify(
    request: Request, _: Annotated[Principal, Depends(require(Perm.READ))]
) -> AuditVerifyOut:
    audit = get_ctx(request).audit
    res = await asyncio.to_thread(audit.verify)
    seq, head = await asyncio.to_thread(audit.head)
    return AuditVerifyOut(
        ok=res.ok,
        rows=res.rows,
        first_broken=res.first_broken,
        problem=res.problem,
        head_seq=seq,
        head_hash=head,
    )
