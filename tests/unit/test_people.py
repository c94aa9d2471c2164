"""The people registry: strict loading with every problem named (never a submitted value),
lookups always keyed by agency, argon2id only, passwords checked in about the same time
whatever the reason for a refusal."""

from __future__ import annotations

import logging
import stat
import textwrap
from pathlib import Path
from typing import Literal

import pytest
from argon2 import PasswordHasher, Type

from services.common.people import (
    ROLES,
    People,
    PeopleInvalid,
    Person,
    hash_password,
    load_file,
    save_people,
)
from services.common.secrets import DEMO_PASSWORD

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "deploy" / "local" / "users.yaml"
PASSWORD = "correct horse battery staple"
# One hash for the module: argon2id is slow on purpose.
HASH = hash_password(PASSWORD)
ARGON2I = PasswordHasher(type=Type.I).hash(PASSWORD)
BCRYPT = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"


def write(directory: Path, text: str, name: str = "users.yaml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(PeopleInvalid) as info:
        People.load(path)
    return [str(p) for p in info.value.problems]


@pytest.fixture(scope="module")
def demo() -> People:
    return People.load(DEMO)


# --- the shipped demo registry -------------------------------------------------------------------


def test_the_same_staff_id_in_two_agencies_is_two_people(demo: People) -> None:
    mo, tx = demo.get("mo-jackson", "W-1"), demo.get("tx-el-paso", "W-1")
    assert mo is not None and tx is not None
    assert (mo.agency_id, tx.agency_id) == ("mo-jackson", "tx-el-paso")
    assert mo.name != tx.name and mo.email != tx.email


def test_a_person_of_one_agency_is_not_found_in_another(demo: People) -> None:
    assert demo.get("mo-jackson", "S-1") is not None
    assert demo.get("tx-el-paso", "S-1") is None
    assert demo.get("tx-el-paso", "W-2") is None
    assert demo.get("nowhere", "W-1") is None
    assert demo.with_role("tx-el-paso", "supervisor") == [demo.get("tx-el-paso", "S-3")]
    assert demo.of_agency("nowhere") == []


def test_the_demo_registry_has_every_role_in_both_agencies(demo: People) -> None:
    assert demo.agencies() == {"mo-jackson", "tx-el-paso"}
    for agency in demo.agencies():
        for role in ROLES:
            assert demo.with_role(agency, role), (agency, role)
    assert [p.id for p in demo.with_role("mo-jackson", "caseworker")] == ["W-1", "W-2"]
    assert [p.id for p in demo.with_role("tx-el-paso", "caseworker")] == ["W-1", "W-7"]
    assert [p.id for p in demo.of_agency("tx-el-paso")] == sorted(
        ["A-2", "C-4", "D-2", "O-2", "S-3", "W-1", "W-7"]
    )


def test_the_demo_password_is_the_operators(demo: People) -> None:
    operator = demo.verify_password("mo-jackson", "O-1", DEMO_PASSWORD)
    assert operator is not None and operator.roles == ("operator",)
    assert demo.verify_password("tx-el-paso", "O-1", DEMO_PASSWORD) is None  # O-2 there


# --- passwords -----------------------------------------------------------------------------------


def registry(tmp_path: Path) -> People:
    return People.load(
        write(
            tmp_path,
            f"""\
            version: 1
            people:
              - {{id: S-1, agency_id: mo-jackson, name: Jordan Price, roles: [supervisor],
                  password_hash: "{HASH}"}}
              - {{id: S-1, agency_id: tx-el-paso, name: Robin Castillo, roles: [supervisor]}}
              - {{id: S-2, agency_id: mo-jackson, name: Gone Person, roles: [supervisor],
                  password_hash: "{HASH}", disabled: true}}
            """,
        )
    )


def test_verify_password_accepts_only_the_right_password_of_an_enabled_person(
    tmp_path: Path,
) -> None:
    people = registry(tmp_path)
    assert people.verify_password("mo-jackson", "S-1", PASSWORD) == people.get("mo-jackson", "S-1")
    assert people.verify_password("mo-jackson", "S-1", PASSWORD + "x") is None
    assert people.verify_password("tx-el-paso", "S-1", PASSWORD) is None  # no hash
    assert people.verify_password("mo-jackson", "S-9", PASSWORD) is None  # unknown
    assert people.verify_password("mo-jackson", "S-2", PASSWORD) is None  # disabled
    disabled = people.get("mo-jackson", "S-2")
    assert disabled is not None and disabled.disabled  # get returns them; callers check
    assert people.with_role("mo-jackson", "supervisor") == [people.get("mo-jackson", "S-1")]
    assert [p.id for p in people.of_agency("mo-jackson")] == ["S-1", "S-2"]


@pytest.mark.parametrize("password", ["", "\udcff" * 20, "é" * 13, "\x00" * 12, "x" * 100_000])
def test_verify_password_never_raises(tmp_path: Path, password: str) -> None:
    people = registry(tmp_path)
    assert people.verify_password("mo-jackson", "S-1", password) is None
    assert people.verify_password("mo-jackson", "nobody", password) is None


def test_hash_password_is_argon2id_and_refuses_short_passwords() -> None:
    assert HASH.startswith("$argon2id$v=19$")
    assert PasswordHasher().verify(HASH, PASSWORD)
    with pytest.raises(ValueError, match="at least 12 characters"):
        hash_password("elevenchars")
    with pytest.raises(ValueError, match="at most 1024 characters"):
        hash_password("x" * 1025)


# --- loading: every problem, file and path named, no value echoed --------------------------------

ENTRY = "{id: W-1, agency_id: mo-jackson, name: Alex Rivera, roles: [caseworker]"


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ("email: alex.rivera-at-example", "people.0.email: not an email address"),
        ('sms: "555-0101"', "people.0.sms: not an E.164 phone number such as +15555550101"),
        (f'password_hash: "{ARGON2I}"', "people.0.password_hash: not an argon2id hash"),
        (f'password_hash: "{BCRYPT}"', "people.0.password_hash: not an argon2id hash"),
        ("password_hash: hunter2-plain-text", "people.0.password_hash: not an argon2id hash"),
        (
            'password_hash: "$argon2id$v=19$m=65536,t=3,p=4$!!!$!!!"',
            "people.0.password_hash: not an argon2id hash",
        ),
        ('phone: "+15555550101"', "people.0.phone: Extra inputs are not permitted"),
        (
            "disabled: maybe",
            "people.0.disabled: Input should be a valid boolean, unable to interpret input",
        ),
        (
            'oidc: {issuer: "http://idp.example", subject: abc}',
            "people.0.oidc.issuer: String should match pattern '^https://\\S+$'",
        ),
    ],
)
def test_a_bad_field_is_named_without_its_value(tmp_path: Path, fields: str, problem: str) -> None:
    path = write(tmp_path, f"version: 1\npeople:\n  - {ENTRY}, {fields}}}\n")
    found = problems(path)
    assert found == [f"{path}: {problem}"]
    value = fields.split(":", 1)[1].strip().strip('"')
    assert all(value not in p for p in found)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("version: 2\npeople: []\n", "version: must be 1"),
        ("version: true\npeople: []\n", "version: must be 1"),
        ("people: []\n", "version: must be 1"),
        ("version: 1\npeople: {}\n", "people: must be a list"),
        ("version: 1\npeople: []\nstaff: {}\n", "staff: unknown field"),
        ("- a list\n", "(root): expected a mapping with version: 1 and people"),
        ("version: 1\npeople: [\n", "(file): not valid YAML"),
        (
            "version: 1\npeople:\n  - 7\n",
            "people.0: Input should be a valid dictionary or instance of Person",
        ),
    ],
)
def test_a_bad_file_is_named(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path, text)
    assert problems(path) == [f"{path}: {problem}"]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        version: 1
        people:
          - {id: W-1, agency_id: MO, name: Alex Rivera, roles: [caseworker]}
          - {id: W-2, agency_id: mo-jackson, roles: []}
          - {id: W-3, agency_id: mo-jackson, name: "A\\u202eB", roles: [boss, caseworker]}
          - {id: W-4, agency_id: mo-jackson, name: Sam Lee, roles: [caseworker, caseworker]}
          - {id: W-5, agency_id: mo-jackson, name: Pat Doe, roles: [caseworker]}
          - {id: W-5, agency_id: mo-jackson, name: Pat Again, roles: [supervisor]}
        """,
    )
    assert problems(path) == [
        f"{path}: people.0.agency_id: String should match pattern '^[a-z0-9-]{{2,64}}$'",
        f"{path}: people.1.name: Field required",
        f"{path}: people.1.roles: give at least one role (caseworker, supervisor, director, on_call, operator, auditor)",
        f"{path}: people.2.name: must contain only printable characters (no control, bidi or zero-width)",
        f"{path}: people.2.roles.0: Input should be 'caseworker', 'supervisor', 'director', 'on_call', 'operator' or 'auditor'",
        f"{path}: people.3.roles: a role is listed twice",
        f"{path}: people.5.id: W-5 is already a person of mo-jackson ({path} people.4)",
    ]


def test_an_oidc_identity_belongs_to_one_person(tmp_path: Path) -> None:
    def two(first: str, second: str) -> Path:
        issuer = "https://idp.example"
        return write(
            tmp_path,
            f"""\
            version: 1
            people:
              - {{id: W-1, agency_id: mo-jackson, name: A B, roles: [caseworker],
                  oidc: {{issuer: "{issuer}", subject: "{first}"}}}}
              - {{id: W-1, agency_id: tx-el-paso, name: C D, roles: [caseworker],
                  oidc: {{issuer: "{issuer}", subject: "{second}"}}}}
            """,
        )

    path = two("abc", "abc")
    assert problems(path) == [f"{path}: people.1.oidc: the same OIDC identity as {path} people.0"]
    people = People.load(two("xyz", "abc"))
    found = people.by_oidc("https://idp.example", "abc")
    assert found is not None and found.agency_id == "tx-el-paso"
    assert people.by_oidc("https://idp.example", "nobody") is None


# --- a directory of files ------------------------------------------------------------------------


def test_a_directory_merges_its_yaml_files_and_refuses_a_duplicate_across_them(
    tmp_path: Path,
) -> None:
    mo = write(tmp_path, f"version: 1\npeople:\n  - {ENTRY}}}\n", "mo.yaml")
    write(
        tmp_path,
        "version: 1\npeople:\n  - {id: W-1, agency_id: tx-el-paso, name: C D, roles: [caseworker]}\n",
        "tx.yaml",
    )
    write(tmp_path, "not: read\n", "notes.txt")
    people = People.load(tmp_path)
    assert people.agencies() == {"mo-jackson", "tx-el-paso"}
    again = write(tmp_path, f"version: 1\npeople:\n  - {ENTRY}}}\n", "zz.yaml")
    assert problems(tmp_path) == [
        f"{again}: people.0.id: W-1 is already a person of mo-jackson ({mo} people.0)"
    ]


def test_an_empty_directory_is_a_problem(tmp_path: Path) -> None:
    assert problems(tmp_path) == [f"{tmp_path}: (directory): no *.yaml file in it"]


def test_a_missing_file_is_a_problem(tmp_path: Path) -> None:
    assert problems(tmp_path / "nope.yaml") == [
        f"{tmp_path / 'nope.yaml'}: (file): cannot read: No such file or directory"
    ]


# --- personal data stays out of reprs and logs ---------------------------------------------------


def test_repr_and_str_show_only_agency_and_id(caplog: pytest.LogCaptureFixture) -> None:
    person = Person(
        id="W-1",
        agency_id="mo-jackson",
        name="Alex Rivera",
        email="alex.rivera@mo-jackson.example",
        sms="+15555550101",
        roles=("caseworker",),
        password_hash=HASH,
    )
    assert repr(person) == "Person(agency_id='mo-jackson', id='W-1')"
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("person %s %r %s", person, person, [person])
    shown = repr(person) + str(person) + f"{person}" + caplog.text
    for private in ("Alex", "alex.rivera", "5550101", "argon2"):
        assert private not in shown


# --- writing -------------------------------------------------------------------------------------


def test_save_rewrites_one_file_atomically_owner_only_keeping_its_header(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""\
        # the registry of Jackson County
        version: 1
        people:
          - {ENTRY}, sms: "+15555550101", password_hash: "{HASH}"}}
          - {{id: S-1, agency_id: mo-jackson, name: Jordan Price, roles: [supervisor]}}
        """,
    )
    people = load_file(path)
    people.append(
        Person(id="D-1", agency_id="mo-jackson", name="Morgan Ellis", roles=("director",))
    )
    save_people(path, people)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("# the registry of Jackson County\nversion: 1\n")
    assert load_file(path) == people
    assert [p.name for p in load_file(path)] == ["Alex Rivera", "Jordan Price", "Morgan Ellis"]
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    with pytest.raises(PeopleInvalid, match=r"people.3.id: D-1 is already a person"):
        save_people(path, [*people, people[2]])


class CountingHasher(PasswordHasher):
    def __init__(self) -> None:
        super().__init__()
        self.verified = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.verified += 1
        return super().verify(hash, password)


def test_every_refusal_costs_one_argon2_verification(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """So a caller can not tell an unknown or disabled person from a wrong password by time."""
    people = registry(tmp_path)
    hasher = CountingHasher()
    monkeypatch.setattr("services.common.people._HASHER", hasher)
    for agency, person, password in [
        ("mo-jackson", "S-1", "wrong password!"),
        ("mo-jackson", "S-9", PASSWORD),  # unknown
        ("tx-el-paso", "S-1", PASSWORD),  # no password
        ("mo-jackson", "S-2", PASSWORD),  # disabled
        ("nowhere", "S-1", PASSWORD),
    ]:
        before = hasher.verified
        assert people.verify_password(agency, person, password) is None
        assert hasher.verified == before + 1, (agency, person)
