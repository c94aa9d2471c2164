"""API tokens: one agency (or every agency, for a shared receiver) and one role each, hashes
only, every problem named without the value, the public demo tokens refused outside demo."""

from __future__ import annotations

import stat
import textwrap
from pathlib import Path

import pytest

from services.common.people import NEW_ENTRY, People
from services.common.secrets import (
    DEMO_API_TOKENS,
    DEMO_AUDITOR_TOKEN_MO_JACKSON,
    DEMO_AUDITOR_TOKEN_TX_EL_PASO,
    DEMO_OPERATOR_TOKEN_MO_JACKSON,
    DEMO_OPERATOR_TOKEN_TX_EL_PASO,
    DEMO_RECEIVER_TOKEN_NCMEC,
    DEMO_SECRETS,
    secret_hash,
)
from services.common.tokens import (
    ApiTokens,
    ApiTokensInvalid,
    Grant,
    append_token,
    new_token,
)

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "deploy" / "local" / "tokens.yaml"
TOKEN = "cat_a-real-looking-token-for-the-tests-0123456789"
SHA = secret_hash(TOKEN)


def write(directory: Path, text: str) -> Path:
    path = directory / "tokens.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def problems(path: Path, demo: bool = False) -> list[str]:
    with pytest.raises(ApiTokensInvalid) as info:
        ApiTokens.load(path, demo=demo)
    return [str(p) for p in info.value.problems]


# --- the demo tokens -----------------------------------------------------------------------------


def test_the_demo_tokens_grant_their_agency_and_role() -> None:
    tokens = ApiTokens.load(DEMO, demo=True)
    expected = {
        DEMO_OPERATOR_TOKEN_MO_JACKSON: ("mo-jackson", "operator", "O-1", None),
        DEMO_AUDITOR_TOKEN_MO_JACKSON: ("mo-jackson", "auditor", "A-1", None),
        DEMO_OPERATOR_TOKEN_TX_EL_PASO: ("tx-el-paso", "operator", "O-2", None),
        DEMO_AUDITOR_TOKEN_TX_EL_PASO: ("tx-el-paso", "auditor", "A-2", None),
        DEMO_RECEIVER_TOKEN_NCMEC: ("*", "receiver", None, "ncmec"),
    }
    assert set(expected) == set(DEMO_API_TOKENS) <= DEMO_SECRETS
    for token, (agency, role, person, receiver) in expected.items():
        grant = tokens.lookup(token)
        assert grant is not None
        assert (grant.agency_id, grant.role, grant.person_id, grant.receiver) == (
            agency,
            role,
            person,
            receiver,
        )
    assert tokens.agencies() == {"mo-jackson", "tx-el-paso"}
    assert tokens.check_people(People.load(ROOT / "deploy" / "local" / "users.yaml")) == []


def test_the_demo_tokens_file_is_refused_outside_demo() -> None:
    found = problems(DEMO)
    assert found == [
        f"{DEMO}: tokens.{i}.sha256: the hash of a public demo token; issue real tokens with"
        " `carealert token add` (or set CAREALERT_ENV=demo on a laptop)"
        for i in range(5)
    ]


# --- lookups -------------------------------------------------------------------------------------


def one_token(tmp_path: Path) -> ApiTokens:
    return ApiTokens.load(
        write(
            tmp_path,
            f"""\
            version: 1
            tokens:
              - {{sha256: {SHA}, agency_id: mo-jackson, role: operator, label: ops, person_id: S-1}}
            """,
        )
    )


def test_lookup_finds_the_grant_of_the_presented_token(tmp_path: Path) -> None:
    assert one_token(tmp_path).lookup(TOKEN) == Grant("mo-jackson", "operator", "ops", "S-1", None)


@pytest.mark.parametrize(
    "presented",
    [
        None,
        "",
        " ",
        SHA,
        TOKEN + " ",
        TOKEN.upper(),
        "é",
        "\udcff",
        "\x00",
        "🦀" * 1000,
        "x" * 10**6,
    ],
)
def test_lookup_refuses_anything_else_without_raising(
    tmp_path: Path, presented: str | None
) -> None:
    assert one_token(tmp_path).lookup(presented) is None


def test_the_empty_set_grants_nothing() -> None:
    assert ApiTokens.empty().lookup(TOKEN) is None
    assert ApiTokens.empty().agencies() == frozenset()


def test_hash_token_is_sha256_of_utf8_and_takes_any_str() -> None:
    assert secret_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert len(secret_hash("\udcff")) == 64


def test_new_tokens_are_long_random_and_prefixed() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(t.startswith("cat_") and len(t) >= 4 + 43 for t in tokens)


# --- loading problems ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (
            f"{{sha256: {TOKEN}, agency_id: mo-jackson, role: operator}}",
            "tokens.0.sha256: not a SHA-256 hex digest (64 lowercase hex characters; store the"
            " hash, never the token)",
        ),
        (
            f"{{sha256: {SHA}, agency_id: mo-jackson, role: admin}}",
            "tokens.0.role: Input should be 'operator', 'auditor' or 'receiver'",
        ),
        (
            f"{{sha256: {SHA}, agency_id: Mo Jackson, role: operator}}",
            'tokens.0.agency_id: not an agency id ([a-z0-9-], 2 to 64 characters) nor "*"',
        ),
        (f"{{sha256: {SHA}, role: operator}}", "tokens.0.agency_id: Field required"),
        (
            f'{{sha256: {SHA}, agency_id: "*", role: operator}}',
            'tokens.0.agency_id: "*" (every agency) is only for role receiver',
        ),
        (
            f'{{sha256: {SHA}, agency_id: "*", role: receiver}}',
            "tokens.0.receiver: required for role receiver",
        ),
        (
            f"{{sha256: {SHA}, agency_id: mo-jackson, role: auditor, receiver: ncmec}}",
            "tokens.0.receiver: only for role receiver",
        ),
        (
            f"{{sha256: {SHA}, agency_id: mo-jackson, role: receiver, receiver: x, person_id: S-1}}",
            "tokens.0.person_id: not for role receiver (a receiver is not a person)",
        ),
        (
            f"{{sha256: {SHA}, agency_id: mo-jackson, role: operator, token: {TOKEN}}}",
            "tokens.0.token: Extra inputs are not permitted",
        ),
    ],
)
def test_a_bad_entry_is_named_without_its_value(tmp_path: Path, entry: str, problem: str) -> None:
    path = write(tmp_path, f"version: 1\ntokens:\n  - {entry}\n")
    found = problems(path)
    assert found == [f"{path}: {problem}"]
    assert all(TOKEN not in p for p in found)


def test_every_problem_is_reported_at_once_and_a_duplicate_hash_named(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""\
        version: 2
        extra: 1
        tokens:
          - {{sha256: {SHA}, agency_id: mo-jackson, role: operator}}
          - {{sha256: {SHA}, agency_id: tx-el-paso, role: auditor}}
          - {{sha256: nothex, agency_id: mo-jackson, role: operator}}
          - {{sha256: {secret_hash("b")}, agency_id: "*", role: auditor}}
        """,
    )
    assert problems(path) == [
        f"{path}: version: must be 1",
        f"{path}: extra: unknown field",
        f"{path}: tokens.1.sha256: the same token as tokens.0",
        f"{path}: tokens.2.sha256: not a SHA-256 hex digest (64 lowercase hex characters; store the hash, never the token)",
        f'{path}: tokens.3.agency_id: "*" (every agency) is only for role receiver',
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("version: 1\n", "tokens: must be a list"),
        ("[]\n", "(root): expected a mapping with version: 1 and tokens"),
        ("version: 1\ntokens: [\n", "(file): not valid YAML"),
    ],
)
def test_a_bad_file_is_named(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path, text)
    assert problems(path) == [f"{path}: {problem}"]


def test_a_token_acting_as_an_unknown_person_is_found_by_the_cross_check(tmp_path: Path) -> None:
    tokens = one_token(tmp_path)
    people = People.load(ROOT / "deploy" / "local" / "users.yaml")
    assert [str(p) for p in tokens.check_people(people)] == []  # S-1 is in mo-jackson
    other = write(
        tmp_path,
        f"""\
        version: 1
        tokens:
          - {{sha256: {SHA}, agency_id: tx-el-paso, role: operator, person_id: S-1}}
        """,
    )
    assert [str(p) for p in ApiTokens.load(other).check_people(people)] == [
        f"{other}: tokens.0.person_id: no person S-1 in tx-el-paso"
    ]


# --- appending -----------------------------------------------------------------------------------


def test_append_creates_the_file_owner_only_and_keeps_the_others(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    first = {"sha256": SHA, "agency_id": "mo-jackson", "role": "operator"}
    append_token(path, first)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = {"sha256": secret_hash("b"), "agency_id": "*", "role": "receiver", "receiver": "ncmec"}
    append_token(path, second)
    tokens = ApiTokens.load(path)
    assert tokens.lookup(TOKEN) == Grant("mo-jackson", "operator", "", None, None)
    assert tokens.lookup("b") == Grant("*", "receiver", "", None, "ncmec")
    with pytest.raises(ApiTokensInvalid) as info:
        append_token(path, {**first, "role": "auditor"})
    assert [str(p) for p in info.value.problems] == [f"{NEW_ENTRY}: sha256: already in the file"]
    with pytest.raises(ApiTokensInvalid) as info:
        append_token(path, {**first, "agency_id": "*"})
    assert [(p.file, p.path) for p in info.value.problems] == [(NEW_ENTRY, "agency_id")]
