"""The audit trail: who viewed or changed what, and when.

Events are added to the caller's database session, so an action and its audit event commit (or
roll back) together: there is never an audited action that did not happen, nor an unaudited one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from meddx.workstation.db.models import AuditEvent, User, utcnow

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


_INSERT = insert(AuditEvent.__table__)  # built once (see :func:`write`)


def record(session: Session, action: str, user: User | None = None, *, username: str = "",
           target_type: str = "", target_id: Any = "", detail: dict[str, Any] | None = None,
           client: str = "") -> AuditEvent:
    """Add an audit event to ``session`` (committed with the caller's transaction)."""
    event = AuditEvent(**values(action, user, username=username, target_type=target_type,
                                target_id=target_id, detail=detail, client=client))
    session.add(event)
    return event


def values(action: str, user: User | None = None, *, username: str = "", target_type: str = "",
           target_id: Any = "", detail: dict[str, Any] | None = None,
           client: str = "") -> dict[str, Any]:
    """The column values of an audit event (for :func:`write`; :func:`record` takes the same).

    Raises:
        ValueError: ``action`` is not one of :data:`ACTIONS`.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    return {"at": utcnow(), "user_id": user.id if user else None,
            "username": (user.username if user else username)[:64], "action": action,
            "target_type": target_type, "target_id": str(target_id)[:64],
            "detail": detail or {}, "client": client[:64]}


def write(session: Session, *events: dict[str, Any]) -> None:
    """Insert events made by :func:`values` in the caller's transaction, without the ORM.

    One INSERT for all of them, nothing loaded into the session: the hot paths' cheaper way to
    the same rows; they commit or roll back with the action like :func:`record`'s.
    """
    session.execute(_INSERT, list(events))
