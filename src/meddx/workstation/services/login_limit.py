"""Login rate limit kept in the database, so it holds across server processes.

``meddx serve --workers N`` runs N processes; a limiter in process memory would give an attacker
N times the attempts (each worker counting its own). The failures are already in the audit
trail (one ``login_failed`` event per failed attempt, committed before the 401 is sent), so the
limit is counted from there: a sliding window of recent failures per user name (since that
user's last successful sign-in) and per client address, shared by every worker.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from meddx.workstation.db.models import AuditEvent
from meddx.workstation.services.users import as_utc


class DatabaseLoginRateLimiter:
    """Says how long a sign-in must wait, from the audit trail's failed attempts.

    Args:
        max_failures: failures allowed per user name, and per client address, in the window.
        window_s: window length in seconds.
        clock: current time (timezone-aware UTC); tests pass their own.
    """

    def __init__(self, max_failures: int = 5, window_s: float = 300.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock

    def retry_after(self, session: Session, username: str, client: str) -> float:
        """Seconds until ``username`` may try again from ``client`` (0: allowed now)."""
        now = self._clock()
        since = now - timedelta(seconds=self.window_s)
        name = username[:64].lower()
        last_login = session.scalar(
            select(func.max(AuditEvent.at)).where(AuditEvent.action == "login",
                                                  func.lower(AuditEvent.username) == name,
                                                  AuditEvent.at > since))
        failed = select(func.count(AuditEvent.id), func.min(AuditEvent.at)).where(
            AuditEvent.action == "login_failed", AuditEvent.at > since)
        by_user = failed.where(func.lower(AuditEvent.username) == name)
        if last_login is not None:
            by_user = by_user.where(AuditEvent.at > last_login)
        wait = 0.0
        for query in (by_user, failed.where(AuditEvent.client == client[:64])):
            count, oldest = session.execute(query).one()
            if count >= self.max_failures and oldest is not None:
                elapsed = (now - as_utc(oldest)).total_seconds()
                wait = max(wait, self.window_s - elapsed)
        return max(wait, 0.0)
