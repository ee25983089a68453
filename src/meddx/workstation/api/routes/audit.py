"""The audit trail (admins only; viewing it is itself audited)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from meddx.safeguards import audit
from meddx.workstation.api.deps import Admin, ClientDep, SessionDep
from meddx.workstation.api.schemas import AuditEventPublic
from meddx.workstation.services import audit_log

router = APIRouter(prefix="/api/audit", tags=["audit"])


@router.get("", response_model=list[AuditEventPublic])
def events(admin: Admin, session: SessionDep, client: ClientDep,
           action: Annotated[str | None, Query(max_length=64)] = None,
           username: Annotated[str | None, Query(max_length=64)] = None,
           target_type: Annotated[str | None, Query(max_length=32)] = None,
           target_id: Annotated[str | None, Query(max_length=64)] = None,
           limit: Annotated[int, Query(ge=1, le=1000)] = 200,
           offset: Annotated[int, Query(ge=0)] = 0) -> list[AuditEventPublic]:
    audit.record(session, "audit_view", admin, detail={"action": action, "username": username},
                 client=client)
    return [AuditEventPublic.model_validate(e) for e in audit_log.list_events(
        session, action=action, username=username, target_type=target_type,
        target_id=target_id, limit=limit, offset=offset)]
