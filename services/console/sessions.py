"""Who is signed in to the console, and who may not try again yet. Pure: every method takes the
time, nothing here touches the network or a clock.

- `Sessions`: a signed-in person's session, found by the random token in its cookie. The token is
  kept only as its SHA-256 (a copy of this store's memory signs nobody in). A session ends after
  `idle_s` without the person doing anything (reading a page, pressing a button: the Now page's
  live refresh is not the person, `touch=False`), after `max_s` whatever happens, and on sign-out.
  Each session has its own CSRF token, put in every form and checked on every POST.
  A session remembers a fingerprint of the password it was opened with: a password changed since
  (`carealert user passwd`) ends it. A one-time message (`flash`) waits in it for the next page.
- `Lockout`: every sign-in attempt is counted *before* the password is checked (so attempts sent
  at once cannot all pass the check) and a right password clears the count; after `failures`
  attempts for one (agency, staff id) within `window_s`, that sign-in is refused until the oldest
  of them is `window_s` old, whether or not the person exists (so the answer tells an attacker
  nothing about who works where). When it tracks `MAX_TRACKED` sign-ins, the oldest ones that
  are not locked are forgotten; a locked one never is (only when every one is locked is a new
  sign-in refused).

Sessions live in the console's memory: a restart signs everyone out (they sign in again).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

MAX_SESSIONS = 100_000  # the oldest session ends first beyond this (all agencies together)
MAX_PER_PERSON = 20  # a person's oldest session ends first beyond this (browsers, devices)
MAX_TRACKED = 10_000  # sign-ins with recent attempts remembered


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def same_secret(expected: str, submitted: str | None) -> bool:
    """Whether a submitted token is the expected one (constant time; non-ASCII never is)."""
    if not submitted or not submitted.isascii():
        return False
    return hmac.compare_digest(expected.encode(), submitted.encode())


def fingerprint(password_hash: str | None) -> str:
    """What a session remembers of the password it was opened with (a digest of its hash)."""
    return _digest(password_hash or "")


@dataclass(frozen=True)
class Session:
    """One signed-in person: their agency, id and roles when they signed in."""

    agency_id: str
    person_id: str
    roles: tuple[str, ...]
    csrf: str
    started: datetime
    last_seen: datetime
    credential: str = ""  # fingerprint() of the password hash it was opened with
    flash: str | None = None  # a message for the next page

    def csrf_ok(self, submitted: str | None) -> bool:
        """Whether a form carried this session's CSRF token (compared in constant time)."""
        return same_secret(self.csrf, submitted)


@dataclass
class Sessions:
    idle_s: float
    max_s: float = 12 * 3600
    _by_digest: OrderedDict[str, Session] = field(default_factory=OrderedDict)

    def start(
        self,
        agency_id: str,
        person_id: str,
        roles: tuple[str, ...],
        now: datetime,
        credential: str = "",
    ) -> tuple[str, Session]:
        """A new session: (the cookie's token, the session)."""
        token = secrets.token_urlsafe(32)
        session = Session(
            agency_id, person_id, roles, secrets.token_urlsafe(32), now, now, credential
        )
        mine = [
            key
            for key, other in self._by_digest.items()
            if (other.agency_id, other.person_id) == (agency_id, person_id)
        ]
        for key in mine[: max(0, len(mine) - MAX_PER_PERSON + 1)]:
            del self._by_digest[key]
        self._by_digest[_digest(token)] = session
        while len(self._by_digest) > MAX_SESSIONS:
            self._by_digest.popitem(last=False)
        return token, session

    def find(self, token: str | None, now: datetime, *, touch: bool = True) -> Session | None:
        """The live session of `token`, or None (unknown, idle too long, too old: it ends).
        `touch`: the person did something, so the idle clock starts again."""
        if not token or len(token) > 200:
            return None
        key = _digest(token)
        session = self._by_digest.get(key)
        if session is None:
            return None
        idle = now - session.last_seen > timedelta(seconds=self.idle_s)
        if idle or now - session.started > timedelta(seconds=self.max_s):
            del self._by_digest[key]
            return None
        if touch:
            session = replace(session, last_seen=now)
            self._by_digest[key] = session
        return session

    def end(self, token: str | None) -> None:
        if token:
            self._by_digest.pop(_digest(token), None)

    def set_flash(self, token: str | None, message: str) -> None:
        """Keep `message` for the session's next page."""
        key = _digest(token) if token else ""
        if key in self._by_digest:
            self._by_digest[key] = replace(self._by_digest[key], flash=message)

    def pop_flash(self, token: str | None) -> str | None:
        """The message kept for this page, once."""
        key = _digest(token) if token else ""
        session = self._by_digest.get(key)
        if session is None or session.flash is None:
            return None
        self._by_digest[key] = replace(session, flash=None)
        return session.flash

    def __len__(self) -> int:
        return len(self._by_digest)


@dataclass
class Lockout:
    failures: int = 5
    window_s: float = 900
    _recent: OrderedDict[tuple[str, str], list[datetime]] = field(default_factory=OrderedDict)

    @staticmethod
    def key(agency_id: str, person_id: str) -> tuple[str, str]:
        return (agency_id.strip().lower(), person_id.strip().lower())

    def _within(self, key: tuple[str, str], now: datetime) -> list[datetime]:
        since = now - timedelta(seconds=self.window_s)
        kept = [t for t in self._recent.get(key, []) if t > since]
        if kept:
            self._recent[key] = kept
        else:
            self._recent.pop(key, None)
        return kept

    def locked(self, agency_id: str, person_id: str, now: datetime) -> bool:
        """Whether this sign-in is refused now (too many recent attempts, or a table full of
        locked sign-ins)."""
        key = self.key(agency_id, person_id)
        if key not in self._recent and len(self._recent) >= MAX_TRACKED:
            self._make_room(now)
            return len(self._recent) >= MAX_TRACKED
        return len(self._within(key, now)) >= self.failures

    def attempt(self, agency_id: str, person_id: str, now: datetime) -> bool:
        """Count an attempt before its password is checked; False (not counted) when locked."""
        if self.locked(agency_id, person_id, now):
            return False
        key = self.key(agency_id, person_id)
        self._recent[key] = [*self._within(key, now), now][-self.failures :]
        self._recent.move_to_end(key)
        return True

    def succeeded(self, agency_id: str, person_id: str) -> None:
        """The right password: its attempts no longer count."""
        self._recent.pop(self.key(agency_id, person_id), None)

    def _make_room(self, now: datetime) -> None:
        """Forget attempts that no longer count, then the oldest sign-ins that are not locked:
        made-up staff ids fill the table with one attempt each, and must push out neither a
        locked sign-in nor everyone else's chance to sign in."""
        for key in list(self._recent):
            self._within(key, now)
        for key in list(self._recent):
            if len(self._recent) < MAX_TRACKED:
                break
            if len(self._recent[key]) < self.failures:
                del self._recent[key]
