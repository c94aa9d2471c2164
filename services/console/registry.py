"""The people registry as the console reads it: loaded at start and again whenever its file (or a
`*.yaml` of its directory) changes, looked at no more than every `every_s` seconds, so that a
person disabled or removed with `carealert user` is signed out within seconds, without a restart.
A registry that no longer loads (a half-written file) keeps the last good one and is logged
(the problem's place, never a value)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from services.common.people import People, PeopleInvalid, registry_files

log = logging.getLogger(__name__)


def _stamp(path: Path) -> tuple[tuple[str, int, int], ...]:
    """What changes when the registry does: each file's name, modification time and size."""
    out = []
    for file in registry_files(path):
        try:
            st = file.stat()
        except OSError:
            continue
        out.append((str(file), st.st_mtime_ns, st.st_size))
    return tuple(out)


@dataclass
class Registry:
    path: Path | None
    every_s: float = 5.0
    people: People = field(default_factory=People.empty)
    _stamp: tuple[tuple[str, int, int], ...] = ()
    _checked: float = float("-inf")

    @classmethod
    def load(cls, path: Path | None, every_s: float = 5.0) -> Registry:
        """The registry at `path` (None: nobody). Raises PeopleInvalid when it does not load."""
        if path is None:
            return cls(None, every_s)
        stamp = _stamp(path)
        return cls(path, every_s, People.load(path), stamp, time.monotonic())

    def current(self) -> People:
        """The registry, read again if its files changed since the last look."""
        now = time.monotonic()
        if self.path is None or now - self._checked < self.every_s:
            return self.people
        self._checked = now
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return self.people
        try:
            self.people = People.load(self.path)
        except PeopleInvalid as exc:
            for problem in exc.problems:
                log.warning(
                    "people registry not reloaded",
                    extra={"file": problem.file, "where": problem.path, "reason": problem.reason},
                )
        except OSError:
            log.warning("people registry not reloaded: unreadable")
        self._stamp = stamp
        return self.people
