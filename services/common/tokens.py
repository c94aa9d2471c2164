"""API tokens for operators, auditors and machine receivers: each token is scoped to one agency
(or, for a shared receiver such as NCMEC, to every agency) and one role. Only SHA-256 hashes
are stored, as for the ingest API keys (services.ingest.keys).

File format (YAML, `CAREALERT_API_TOKENS_FILE`)::

    version: 1
    tokens:
      - sha256: 5e88...            # secret_hash(token)
        agency_id: mo-jackson      # or "*" (every agency), for role receiver only
        role: operator             # operator | auditor | receiver
        label: "ops laptop"        # for people; never logged with the token
        person_id: S-1             # optional: the person the token acts as (not for receivers)
        receiver: law-enforcement  # required for role receiver, forbidden otherwise

A token that is the public demo token of deploy/local is refused unless demo mode.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final, Literal, get_args

from pydantic import AfterValidator, Field, ValidationError

from services.common.config import ConfigInvalid, ConfigProblem
from services.common.events import Id
from services.common.models import Strict
from services.common.people import (
    NEW_ENTRY,
    People,
    leading_comments,
    read_entries,
    write_private_yaml,
)
from services.common.secrets import DEMO_KEY_HASHES, secret_hash
from services.common.topics import AGENCY_ID_PATTERN

TokenRole = Literal["operator", "auditor", "receiver"]
TOKEN_ROLES: Final[tuple[str, ...]] = get_args(TokenRole)
EVERY_AGENCY: Final = "*"

_HEX64 = r"^[0-9a-f]{64}$"
_AGENCY = re.compile(f"^{AGENCY_ID_PATTERN}$")
# Messages of our own for the fields whose value must not be echoed or is easy to get wrong.
_REASONS: Final = {
    "sha256": "not a SHA-256 hex digest (64 lowercase hex characters; store the hash, "
    "never the token)",
    "agency_id": 'not an agency id ([a-z0-9-], 2 to 64 characters) nor "*"',
}


class ApiTokensInvalid(ConfigInvalid):
    """The tokens file can not be used; `problems` lists every one ("file: path: reason")."""


@dataclass(frozen=True)
class Grant:
    """What a presented token may do: act for `agency_id` ("*": every agency) as `role`."""

    agency_id: str
    role: TokenRole
    label: str
    person_id: str | None
    receiver: str | None


def _scope(value: str) -> str:
    if value != EVERY_AGENCY and not _AGENCY.match(value):
        raise ValueError("not an agency id")
    return value


class _Entry(Strict):
    sha256: Annotated[str, Field(pattern=_HEX64)]
    agency_id: Annotated[str, AfterValidator(_scope)]
    role: TokenRole
    label: Annotated[str, Field(max_length=256)] = ""
    person_id: Id | None = None
    receiver: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)] | None = None


def new_token() -> str:
    """A fresh random API token (256 bits, URL-safe)."""
    return "cat_" + secrets.token_urlsafe(32)


def _entry_problems(entry: _Entry) -> list[tuple[str, str]]:
    """The rules between fields: (field, reason) for each one broken."""
    problems: list[tuple[str, str]] = []
    if entry.role == "receiver":
        if entry.receiver is None:
            problems.append(("receiver", "required for role receiver"))
        if entry.person_id is not None:
            problems.append(("person_id", "not for role receiver (a receiver is not a person)"))
    else:
        if entry.receiver is not None:
            problems.append(("receiver", "only for role receiver"))
        if entry.agency_id == EVERY_AGENCY:
            problems.append(("agency_id", '"*" (every agency) is only for role receiver'))
    return problems


def _path(*parts: int | str) -> str:
    return ".".join(str(p) for p in parts if p != "") or "(root)"


def check_entry(
    raw: object, file: str, where: str
) -> tuple[Grant | None, str, list[ConfigProblem]]:
    """One tokens-file entry: its grant and hash, or None and every problem (never the value),
    each at a path under `where` ("" for the entry's own fields)."""
    try:
        entry = _Entry.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for e in exc.errors(include_url=False, include_input=False):
            field = str(e["loc"][0]) if e["loc"] else ""
            reason = _REASONS.get(field, str(e["msg"])) if e["type"] != "missing" else e["msg"]
            problems.append(ConfigProblem(file, _path(where, *e["loc"]), reason))
        return None, "", problems
    problems = [ConfigProblem(file, _path(where, f), r) for f, r in _entry_problems(entry)]
    if problems:
        return None, entry.sha256, problems
    grant = Grant(entry.agency_id, entry.role, entry.label, entry.person_id, entry.receiver)
    return grant, entry.sha256, []


class ApiTokens:
    """Maps presented tokens to what they grant."""

    def __init__(
        self, by_hash: dict[str, Grant], where: dict[str, tuple[str, str]] | None = None
    ) -> None:
        self._by_hash = dict(by_hash)
        self._where = dict(where or {})  # hash -> file and path, for the cross-reference pass

    @classmethod
    def empty(cls) -> ApiTokens:
        return cls({})

    @classmethod
    def load(cls, path: Path, demo: bool = False) -> ApiTokens:
        """Read a tokens file. Raises ApiTokensInvalid with every problem, each naming the file
        and the path in it, never a token or a hash. The public demo tokens are refused unless
        `demo` (CAREALERT_ENV=demo)."""
        return cls(*_load(path, demo))

    def lookup(self, presented: str | None) -> Grant | None:
        """What the presented token grants, or None (missing, empty or unknown). Never raises."""
        if not presented:
            return None
        return self._by_hash.get(secret_hash(presented))

    def agencies(self) -> frozenset[str]:
        """The agencies some token is scoped to ("*" not included)."""
        return frozenset(g.agency_id for g in self._by_hash.values()) - {EVERY_AGENCY}

    def check_people(self, people: People) -> list[ConfigProblem]:
        """The cross-reference pass, once a service has both files: every token whose person_id
        is not a person of the token's agency."""
        problems = []
        for sha256, g in self._by_hash.items():
            if g.person_id is not None and people.get(g.agency_id, g.person_id) is None:
                file, where = self._where.get(sha256, ("(tokens)", "tokens"))
                reason = f"no person {g.person_id} in {g.agency_id}"
                problems.append(ConfigProblem(file, f"{where}.person_id", reason))
        return problems


def _load(path: Path, demo: bool) -> tuple[dict[str, Grant], dict[str, tuple[str, str]]]:
    file = str(path)
    entries, problems = read_entries(path, "tokens")
    by_hash: dict[str, Grant] = {}
    located: dict[str, tuple[str, str]] = {}
    seen: dict[str, int] = {}
    for i, entry in enumerate(entries):
        where = f"tokens.{i}"
        grant, sha256, found = check_entry(entry, file, where)
        problems += found
        if sha256 in seen:
            problems.append(
                ConfigProblem(file, f"{where}.sha256", f"the same token as tokens.{seen[sha256]}")
            )
        elif sha256:
            seen[sha256] = i
        if sha256 in DEMO_KEY_HASHES and not demo:
            problems.append(
                ConfigProblem(
                    file,
                    f"{where}.sha256",
                    "the hash of a public demo token; issue real tokens with `carealert token "
                    "add` (or set CAREALERT_ENV=demo on a laptop)",
                )
            )
        if grant is not None and sha256 not in by_hash:
            by_hash[sha256] = grant
            located[sha256] = (file, where)
    if problems:
        raise ApiTokensInvalid(problems)
    return by_hash, located


def append_token(path: Path, entry: dict[str, str]) -> None:
    """Add one entry to a tokens file (created with version: 1 if missing), atomically and
    readable by the owner only; its leading comments are kept, others lost. The file is checked
    first (demo tokens allowed: this only edits). Raises ApiTokensInvalid; the entry's own
    problems name the file NEW_ENTRY."""
    grant, _, problems = check_entry(entry, NEW_ENTRY, "")
    if problems or grant is None:
        raise ApiTokensInvalid(problems)
    if path.exists():
        if entry["sha256"] in _load(path, demo=True)[0]:
            raise ApiTokensInvalid([ConfigProblem(NEW_ENTRY, "sha256", "already in the file")])
        entries, _ = read_entries(path, "tokens")
        data = {"version": 1, "tokens": [*entries, entry]}
    else:
        data = {"version": 1, "tokens": [entry]}
    write_private_yaml(path, data, leading_comments(path))
