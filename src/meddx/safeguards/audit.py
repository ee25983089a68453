"""The audit trail: who viewed or changed what, and when.

Events are added to the caller's database session, so an action and its audit event commit (or
roll back) together: there is never an audited action that did not happen, nor an unaudited one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from meddx.workstation.db.models import AuditEvent, User

# What each action means, for the audit page and for reviewers of this code.
ACTIONS = {
    "login": "signed in",
    "login_failed": "failed to sign in",
    "login_throttled": "sign-in refused by the rate limit",
    "logout": "signed out",
    "user_create": "created a user",
    "user_update": "changed a user",
    "study_upload": "uploaded a study",
    "study_view": "opened a study",
    "patient_view": "viewed identifying patient fields",
    "prediction": "ran a model on a study",
    "feedback": "reviewed a finding",
    "model_register": "registered a model",
    "feedback_export": "exported feedback as a dataset",
    "audit_view": "viewed the audit trail",
}


def record(session: Session, action: str, user: User | None = None, *, username: str = "",
           target_type: str = "", target_id: Any = "", detail: dict[str, Any] | None = None,
           client: str = "") -> AuditEvent:
    """Add an audit event to ``session`` (committed with the caller's transaction)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    event = AuditEvent(user_id=user.id if user else None,
                       username=(user.username if user else username)[:64], action=action,
                       target_type=target_type, target_id=str(target_id)[:64],
                       detail=detail or {}, client=client[:64])
    session.add(event)
    return event
