"""Reading the audit trail (writing is :func:`meddx.safeguards.audit.record`)."""

from __future__ import annotations

from sqlalchemy import desc, select
from sqlalchemy.orm import Session

from meddx.workstation.db.models import AuditEvent


def list_events(session: Session, *, action: str | None = None, username: str | None = None,
                target_type: str | None = None, target_id: str | None = None,
                limit: int = 200, offset: int = 0) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(desc(AuditEvent.id))
    if action:
        query = query.where(AuditEvent.action == action)
    if username:
        query = query.where(AuditEvent.username == username)
    if target_type:
        query = query.where(AuditEvent.target_type == target_type)
    if target_id:
        query = query.where(AuditEvent.target_id == target_id)
    return list(session.scalars(query.limit(limit).offset(offset)))
