"""Console sessions: random ids in a cookie, kept server side in memory with an expiry and a CSRF token.

A session id is 256 random bits (``secrets.token_urlsafe(32)``); the cookie holding it is ``HttpOnly``,
``SameSite=Strict``, ``Path=/console/`` and ``Secure`` over TLS. The table lives in the server process: a
restart signs everyone out, which is the safe direction. Expired sessions are forgotten when next looked up
and swept whenever a session is created, so the table stays bounded by the sign-ins of one lifetime.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["COOKIE", "DEFAULT_TTL_S", "Lookup", "Session", "SessionStore"]

#: the cookie's name
COOKIE = "panoflow_console"
#: how long a session lives (8 hours)
DEFAULT_TTL_S = 8 * 3600.0
#: the most sessions kept at once (the oldest go first beyond it)
MAX_SESSIONS = 10_000


@dataclass
class Session:
    """Who signed in (``principal``: an access key id, or ``device`` on a device), whether the key may only
    read, the CSRF token every POST must carry, and when the session ends (``time.monotonic`` seconds)."""

    id: str
    principal: str
    read_only: bool
    csrf: str
    expires: float
    flashes: list[tuple[str, str]] = field(default_factory=list)

    def check_csrf(self, token: str | None) -> bool:
        """Whether ``token`` is this session's CSRF token (constant-time comparison)."""
        return bool(token) and hmac.compare_digest(str(token).encode(), self.csrf.encode())

    def flash(self, kind: str, text: str) -> None:
        """Keep a message (``ok`` or ``error``) for the next page shown."""
        self.flashes.append((kind, text))

    def take_flashes(self) -> list[tuple[str, str]]:
        out, self.flashes = self.flashes, []
        return out


@dataclass(frozen=True)
class Lookup:
    """The result of looking a cookie up: the live session, or None with ``expired`` telling why."""

    session: Session | None
    expired: bool = False


class SessionStore:
    """The in-memory session table (thread-safe; one per console)."""

    def __init__(self, ttl_s: float = DEFAULT_TTL_S, clock: Callable[[], float] = time.monotonic):
        if ttl_s <= 0:
            raise ValueError("the session lifetime must be positive")
        self.ttl_s = ttl_s
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._expired: dict[str, None] = {}  # ids swept after expiry (bounded): still answered as expired
        self._lock = threading.Lock()

    def create(self, principal: str, *, read_only: bool) -> Session:
        """A new session for ``principal``."""
        now = self._clock()
        session = Session(secrets.token_urlsafe(32), principal, read_only, secrets.token_urlsafe(32),
                          now + self.ttl_s)
        with self._lock:
            for sid in [k for k, s in self._sessions.items() if s.expires <= now]:
                del self._sessions[sid]
                self._expired[sid] = None
            while len(self._expired) > MAX_SESSIONS:
                del self._expired[next(iter(self._expired))]
            while len(self._sessions) >= MAX_SESSIONS:
                del self._sessions[next(iter(self._sessions))]
            self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Lookup:
        """The live session of a cookie value; an expired one is removed and reported as ``expired``."""
        if not session_id:
            return Lookup(None)
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return Lookup(None, expired=session_id in self._expired)
            if session.expires <= self._clock():
                del self._sessions[session_id]
                return Lookup(None, expired=True)
            return Lookup(session)

    def end(self, session_id: str | None) -> None:
        """Forget a session (sign-out)."""
        if session_id:
            with self._lock:
                self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._sessions)
