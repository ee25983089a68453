"""Retries with exponential back-off for calls to a PACS that may be down or busy."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from meddx.pacs.errors import PacsError

__all__ = ["RetryPolicy", "with_retries"]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry.

    Attributes:
        attempts: total tries (1 = no retry).
        first_delay: seconds before the second try; each later delay is ``factor`` times longer,
            capped at ``max_delay``, with +-20% jitter so many clients do not retry in step.
    """

    attempts: int = 4
    first_delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 8.0

    def delays(self) -> list[float]:
        delays, delay = [], self.first_delay
        for _ in range(self.attempts - 1):
            delays.append(min(delay, self.max_delay))
            delay *= self.factor
        return delays


NO_RETRY = RetryPolicy(attempts=1)


def with_retries(call: Callable[[], T], what: str, policy: RetryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> T:
    """Run ``call``; retry retryable :class:`PacsError` with back-off, then re-raise.

    Args:
        call: the operation; it raises :class:`PacsError` (``retryable`` says if a retry can
            help) for PACS failures.
        what: the operation in words, for the log and the final error.
        policy: the retry policy (default :class:`RetryPolicy`).
        sleep: injectable for tests.

    Raises:
        PacsError: the last failure, its message saying how many attempts were made.
    """
    policy = policy or RetryPolicy()
    delays = policy.delays()
    for attempt in range(policy.attempts):
        try:
            return call()
        except PacsError as error:
            if not error.retryable or attempt == policy.attempts - 1:
                if attempt:
                    raise PacsError(f"{error} (gave up after {attempt + 1} attempts)",
                                    error.retryable) from error
                raise
            delay = delays[attempt] * random.uniform(0.8, 1.2)
            log.warning("%s failed (%s); retry %d/%d in %.1f s", what, error, attempt + 1,
                        policy.attempts - 1, delay)
            sleep(delay)
    raise AssertionError("unreachable")
