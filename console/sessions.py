"""Login sessions of the console and the brake on guessing passwords.

A session is a random id in an HttpOnly, SameSite=Strict cookie, held in this process's memory
(a restarted console asks everyone to log in again), with its own CSRF token that every
state-changing request repeats in the ``X-CSRF-Token`` header. Logins fail fast once a user or
an address has failed :data:`MAX_FAILURES` times within :data:`FAILURE_WINDOW` seconds.
"""

from __future__ import annotations

import secrets
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Callable

from console.users import Operator

COOKIE = "subsidy_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_SECONDS = 8 * 3600
MAX_FAILURES = 5
FAILURE_WINDOW = 60.0


@dataclass(frozen=True, slots=True)
class Session:
    operator: Operator
    csrf: str
    expires: float


class Sessions:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._by_id: dict[str, Session] = {}

    def open(self, operator: Operator) -> tuple[str, Session]:
        session_id = secrets.token_urlsafe(32)
        session = Session(operator, secrets.token_urlsafe(32), self._clock() + SESSION_SECONDS)
        self._by_id[session_id] = session
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        session = self._by_id.get(session_id or "")
        if session is not None and session.expires <= self._clock():
            del self._by_id[session_id or ""]
            return None
        return session

    def close(self, session_id: str | None) -> None:
        self._by_id.pop(session_id or "", None)


class LoginLimiter:
    """Failed logins per user name and per address over the last minute."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._failures: defaultdict[str, deque[float]] = defaultdict(deque)

    def wait_seconds(self, name: str, address: str) -> int:
        """0 when a login may be tried now, else the seconds until it may."""
        now = self._clock()
        waits = [0.0]
        for key in (f"user:{name}", f"address:{address}"):
            failures = self._failures.get(key)
            if not failures:
                continue
            while failures and failures[0] <= now - FAILURE_WINDOW:
                failures.popleft()
            if len(failures) >= MAX_FAILURES:
                waits.append(failures[0] + FAILURE_WINDOW - now)
        return int(max(waits) + 0.999)

    def failed(self, name: str, address: str) -> None:
        now = self._clock()
        if len(self._failures) > 10_000:  # guesses at many names: forget those outside the window
            for key in [k for k, failures in self._failures.items() if failures[-1] <= now - FAILURE_WINDOW]:
                del self._failures[key]
        for key in (f"user:{name}", f"address:{address}"):
            self._failures[key].append(now)
