"""The people registry: who works for which agency, in which roles, and how they sign in.

One registry for every agency, kept apart from the policy directory. `CAREALERT_USERS_FILE`
names a YAML file, or a directory whose `*.yaml` files are read and merged::

    version: 1
    people:
      - id: W-1                  # the agency's own staff id (caseworker_id in events)
        agency_id: mo-jackson
        name: Alex Rivera
        email: alex.rivera@mo-jackson.example   # optional
        sms: "+15555550101"                     # optional, E.164
        roles: [caseworker]
        password_hash: "$argon2id$v=19$..."     # optional, argon2id only
        disabled: false                         # optional
        oidc: {issuer: "https://idp.example", subject: "abc"}   # optional

A person belongs to exactly one agency, and a staff id is unique within its agency only: every
lookup names the agency (W-1 of one agency is never W-1 of another). Names, contacts and hashes
are personal data: they never appear in a repr, a log line or a load problem.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Final, Literal, get_args

import yaml
from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import Argon2Error, InvalidHashError
from pydantic import AfterValidator, StringConstraints, ValidationError

from services.common import yamlio
from services.common.config import ConfigInvalid, ConfigProblem
from services.common.events import AgencyId, Id, Text
from services.common.models import Strict

Role = Literal["caseworker", "supervisor", "director", "on_call", "operator", "auditor"]
ROLES: Final[tuple[str, ...]] = get_args(Role)
NEW_ENTRY: Final = "(new entry)"  # the file named in a problem of an entry not yet in a file
MIN_PASSWORD: Final = 12
MAX_PASSWORD: Final = 1024

_HASHER: Final = PasswordHasher()  # argon2id, RFC 9106 low-memory profile (the library default)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
# The PHC string argon2 writes: base64 (no padding) salt and hash.
_ARGON2ID = re.compile(
    r"^\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]{11,}\$[A-Za-z0-9+/]{16,}$"
)


def _argon2id(value: str) -> str:
    try:
        ok = bool(_ARGON2ID.match(value)) and extract_parameters(value).type is Type.ID
    except ValueError:  # InvalidHashError
        ok = False
    if not ok:
        raise ValueError("not an argon2id hash")
    return value


def _email(value: str) -> str:
    if len(value) > 254 or not _EMAIL.match(value):
        raise ValueError("not an email address")
    return value


def _e164(value: str) -> str:
    if not _E164.match(value):
        raise ValueError("not an E.164 phone number such as +15555550101")
    return value


def _roles(roles: tuple[Role, ...]) -> tuple[Role, ...]:
    if not roles:
        raise ValueError(f"give at least one role ({', '.join(ROLES)})")
    if len(set(roles)) != len(roles):
        raise ValueError("a role is listed twice")
    return roles


class OidcIdentity(Strict):
    """Who the person is at an OpenID Connect provider (reserved: sign-in by OIDC later)."""

    issuer: Annotated[str, StringConstraints(pattern=r"^https://\S+$", max_length=512)]
    subject: Annotated[str, StringConstraints(min_length=1, max_length=255)]


class Person(Strict):
    """One member of one agency's staff. Its repr shows only the agency and the id."""

    id: Id
    agency_id: AgencyId
    name: Text
    email: Annotated[str, AfterValidator(_email)] | None = None
    sms: Annotated[str, AfterValidator(_e164)] | None = None
    roles: Annotated[tuple[Role, ...], AfterValidator(_roles)]
    password_hash: Annotated[str, AfterValidator(_argon2id)] | None = None
    disabled: bool = False
    oidc: OidcIdentity | None = None

    def __repr__(self) -> str:
        return f"Person(agency_id={self.agency_id!r}, id={self.id!r})"

    __str__ = __repr__


class PeopleInvalid(ConfigInvalid):
    """The registry can not be used; `problems` lists every one ("file: path: reason")."""


def _where(loc: Sequence[int | str]) -> str:
    return ".".join(str(p) for p in loc) or "(root)"


def _reason(err: Mapping[str, Any]) -> str:
    """pydantic's message without the submitted value (it may be personal data or a secret)."""
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def person_from(raw: object, file: str, where: str = "") -> Person:
    """One person from a mapping (a registry entry, or what the CLI was given).
    Raises PeopleInvalid with one problem per bad field, paths prefixed with `where`."""
    try:
        return Person.model_validate(raw)
    except ValidationError as exc:
        raise PeopleInvalid(
            ConfigProblem(file, _where([where, *e["loc"]] if where else e["loc"]), _reason(e))
            for e in exc.errors(include_url=False, include_input=False)
        ) from None


def registry_files(path: Path) -> list[Path]:
    """The files a registry path stands for: itself, or a directory's `*.yaml` by name."""
    if path.is_dir():
        return sorted(p for p in path.glob("*.yaml") if p.is_file())
    return [path]


def read_entries(path: Path, key: str) -> tuple[list[Any], list[ConfigProblem]]:
    """The entries of a `version: 1` file that lists them under `key`, and every problem of its
    shape (unreadable, not YAML, wrong version, unknown field, not a list); never a value."""
    file = str(path)
    try:
        raw: Any = yamlio.load(path.read_text())
    except OSError as exc:
        return [], [ConfigProblem(file, "(file)", f"cannot read: {exc.strerror}")]
    except yaml.YAMLError:
        return [], [ConfigProblem(file, "(file)", "not valid YAML")]
    if not isinstance(raw, dict):
        return [], [ConfigProblem(file, "(root)", f"expected a mapping with version: 1 and {key}")]
    problems: list[ConfigProblem] = []
    if type(raw.get("version")) is not int or raw["version"] != 1:
        problems.append(ConfigProblem(file, "version", "must be 1"))
    for unknown in sorted(str(k) for k in raw.keys() - {"version", key}):
        problems.append(ConfigProblem(file, unknown, "unknown field"))
    entries = raw.get(key)
    if not isinstance(entries, list):
        problems.append(ConfigProblem(file, key, "must be a list"))
        return [], problems
    return entries, problems


def _read(path: Path) -> tuple[list[tuple[str, int, Person]], list[ConfigProblem]]:
    """The valid people of a file, each with the file and its index there, and the problems."""
    entries, problems = read_entries(path, "people")
    located: list[tuple[str, int, Person]] = []
    for i, entry in enumerate(entries):
        try:
            located.append((str(path), i, person_from(entry, str(path), f"people.{i}")))
        except PeopleInvalid as exc:
            problems += exc.problems
    return located, problems


def load_file(path: Path) -> list[Person]:
    """The people of one registry file, in file order. Raises PeopleInvalid with every problem
    (a duplicate within the file included)."""
    located, problems = _read(path)
    problems += _duplicates(located)
    if problems:
        raise PeopleInvalid(problems)
    return [p for _, _, p in located]


def _duplicates(located: Iterable[tuple[str, int, Person]]) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    ids: dict[tuple[str, str], str] = {}
    oidc: dict[tuple[str, str], str] = {}
    for file, i, p in located:
        here = f"{file} people.{i}"
        first = ids.setdefault((p.agency_id, p.id), here)
        if first != here:
            problems.append(
                ConfigProblem(
                    file, f"people.{i}.id", f"{p.id} is already a person of {p.agency_id} ({first})"
                )
            )
        if p.oidc:
            first = oidc.setdefault((p.oidc.issuer, p.oidc.subject), here)
            if first != here:
                problems.append(
                    ConfigProblem(file, f"people.{i}.oidc", f"the same OIDC identity as {first}")
                )
    return problems


def hash_password(password: str) -> str:
    """An argon2id hash of `password` for the registry. Raises ValueError when it is shorter
    than 12 characters (or longer than 1024)."""
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"a password must be at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise ValueError(f"a password must be at most {MAX_PASSWORD} characters")
    return _HASHER.hash(_bytes(password))


def _bytes(password: str) -> bytes:
    # Any str, lone surrogates from a mis-decoded form included, hashes instead of raising.
    return password.encode("utf-8", "surrogateescape")


_dummy_hash: str | None = None


def _dummy_verify(password: str) -> None:
    """Spend what a real verification costs, so a caller can not tell unknown from wrong."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _HASHER.hash(b"not anyone's password, only for timing")
    try:
        _HASHER.verify(_dummy_hash, _bytes(password[:MAX_PASSWORD]))
    except (Argon2Error, InvalidHashError):
        pass


class People:
    """The registry, read once. Every lookup but `by_oidc` names the agency."""

    def __init__(self, people: Iterable[Person]) -> None:
        """Index `people`. Raises PeopleInvalid on a duplicate (agency, id) or OIDC identity."""
        listed = list(people)
        problems = _duplicates(("(registry)", i, p) for i, p in enumerate(listed))
        if problems:
            raise PeopleInvalid(problems)
        self._by_key = {(p.agency_id, p.id): p for p in listed}
        self._by_oidc = {(p.oidc.issuer, p.oidc.subject): p for p in listed if p.oidc}
        self._by_agency: dict[str, list[Person]] = {}
        for p in sorted(listed, key=lambda p: p.id):
            self._by_agency.setdefault(p.agency_id, []).append(p)

    @classmethod
    def load(cls, path: Path) -> People:
        """Read a registry file, or every `*.yaml` of a directory. Raises PeopleInvalid with
        every problem, each naming the file and the path in it, never a submitted value."""
        files = registry_files(path)
        if not files:
            raise PeopleInvalid([ConfigProblem(str(path), "(directory)", "no *.yaml file in it")])
        problems: list[ConfigProblem] = []
        located: list[tuple[str, int, Person]] = []
        for file in files:
            found, wrong = _read(file)
            located += found
            problems += wrong
        problems += _duplicates(located)
        if problems:
            raise PeopleInvalid(problems)
        return cls(p for _, _, p in located)

    @classmethod
    def empty(cls) -> People:
        return cls([])

    def get(self, agency_id: str, person_id: str) -> Person | None:
        """The person, disabled ones included (callers check `.disabled`), or None."""
        return self._by_key.get((agency_id, person_id))

    def of_agency(self, agency_id: str) -> list[Person]:
        """Everyone of the agency, disabled included, sorted by id."""
        return list(self._by_agency.get(agency_id, ()))

    def with_role(self, agency_id: str, role: str) -> list[Person]:
        """The agency's enabled people who have `role`, sorted by id."""
        return [p for p in self._by_agency.get(agency_id, ()) if role in p.roles and not p.disabled]

    def agencies(self) -> frozenset[str]:
        return frozenset(self._by_agency)

    def by_oidc(self, issuer: str, subject: str) -> Person | None:
        """The person with this OIDC identity (unique across agencies), disabled included."""
        return self._by_oidc.get((issuer, subject))

    def verify_password(self, agency_id: str, person_id: str, password: str) -> Person | None:
        """The person when `password` is theirs; None for an unknown or disabled person, one
        without a password, or a wrong password. Costs about the same whichever the reason."""
        person = self.get(agency_id, person_id)
        if person is None or person.password_hash is None or len(password) > MAX_PASSWORD:
            _dummy_verify(password)
            return None
        try:
            _HASHER.verify(person.password_hash, _bytes(password))
        except (Argon2Error, InvalidHashError):
            return None
        return None if person.disabled else person


def write_private_yaml(path: Path, data: object, header: str = "") -> None:
    """Write `data` as YAML atomically (a temporary file in the same directory, then a rename),
    readable by the owner only (0600). `header` (comment lines) goes first."""
    text = header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def leading_comments(path: Path) -> str:
    """The comment lines at the top of a file (kept when a command rewrites it), or ""."""
    try:
        lines = path.read_text().splitlines(keepends=True)
    except OSError:
        return ""
    head = []
    for line in lines:
        if not line.startswith("#"):
            break
        head.append(line)
    return "".join(head)


def save_people(path: Path, people: Sequence[Person]) -> None:
    """Write one registry file holding `people` in order (the file's leading comments kept,
    others lost). Raises PeopleInvalid on a duplicate."""
    People(people)
    entries = [p.model_dump(mode="json", exclude_defaults=True) for p in people]
    write_private_yaml(path, {"version": 1, "people": entries}, leading_comments(path))
