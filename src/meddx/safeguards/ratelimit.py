"""Rate limiting of login attempts (per user name and per client address).

A sliding window of recent *failures*: after ``max_failures`` within ``window_s`` seconds further
attempts for that user name, or from that address, are refused until the window moves on. Success
clears the user name's failures. State is per server process, which is what a single-process
workstation needs; the audit trail keeps every attempt anyway.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque


class LoginRateLimiter:
    """Counts failed logins and says when to refuse.

    Args:
        max_failures: failures allowed per key within the window.
        window_s: window length in seconds.
        clock: time source (monotonic seconds); tests pass their own.
    """

    def __init__(self, max_failures: int = 5, window_s: float = 300.0, clock=time.monotonic):
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _prune(self, key: str, now: float) -> deque[float]:
        events = self._failures[key]
        while events and now - events[0] > self.window_s:
            events.popleft()
        return events

    def retry_after(self, *keys: str) -> float:
        """Seconds until an attempt for these keys is allowed again (0: allowed now)."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for key in keys:
                events = self._prune(key, now)
                if len(events) >= self.max_failures:
                    wait = max(wait, self.window_s - (now - events[0]))
        return wait

    def failure(self, *keys: str) -> None:
        """Record one failed attempt under each key."""
        now = self._clock()
        with self._lock:
            for key in keys:
                self._prune(key, now).append(now)

    def success(self, key: str) -> None:
        """Forget the failures of a key (the user proved who they are)."""
        with self._lock:
            self._failures.pop(key, None)
