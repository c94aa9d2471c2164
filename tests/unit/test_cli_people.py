"""`carealert user ...` and `carealert token add`: round trips in a temporary directory, one-line
errors naming the flag (exit 1), no file at all (exit 2), and no secret ever printed."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest

from services.cli import main
from services.common.people import People
from services.common.tokens import ApiTokens

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a different long passphrase"


def run(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *argv: str,
    stdin: str = "",
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def no_files_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAREALERT_USERS_FILE", raising=False)
    monkeypatch.delenv("CAREALERT_API_TOKENS_FILE", raising=False)


def test_add_passwd_disable_list_round_trip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    users = tmp_path / "users.yaml"
    monkeypatch.setenv("CAREALERT_USERS_FILE", str(users))
    add = ("user", "add", "--agency", "mo-jackson", "--id", "S-1", "--name", "Jordan Price")
    code, out, err = run(
        capsys,
        monkeypatch,
        *add,
        "--email",
        "jordan.price@mo-jackson.example",
        "--sms",
        "+15555550102",
        "--role",
        "supervisor",
        "--role",
        "on_call",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert (code, out, err) == (0, f"added mo-jackson S-1 in {users}\n", "")
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    code, out, err = run(
        capsys,
        monkeypatch,
        *("user", "add", "--agency", "tx-el-paso", "--id", "S-1", "--name", "Robin Castillo"),
        *("--role", "supervisor"),
    )
    assert code == 0, err

    people = People.load(users)
    assert people.verify_password("mo-jackson", "S-1", PASSWORD) is not None
    assert people.verify_password("tx-el-paso", "S-1", PASSWORD) is None
    person = people.get("mo-jackson", "S-1")
    assert person is not None and person.roles == ("supervisor", "on_call")
    assert person.sms == "+15555550102"

    passwd = ("user", "passwd", "--agency", "mo-jackson", "--id", "S-1")
    code, out, err = run(capsys, monkeypatch, *passwd, stdin=NEW_PASSWORD + "\n")
    assert (code, err) == (0, "")
    people = People.load(users)
    assert people.verify_password("mo-jackson", "S-1", PASSWORD) is None
    assert people.verify_password("mo-jackson", "S-1", NEW_PASSWORD) is not None

    disable = ("user", "disable", "--agency", "mo-jackson", "--id", "S-1")
    assert run(capsys, monkeypatch, *disable)[0] == 0
    people = People.load(users)
    assert people.verify_password("mo-jackson", "S-1", NEW_PASSWORD) is None
    assert people.with_role("mo-jackson", "supervisor") == []
    assert people.with_role("tx-el-paso", "supervisor") == [people.get("tx-el-paso", "S-1")]

    code, out, err = run(capsys, monkeypatch, "user", "list", "--agency", "mo-jackson")
    assert (code, out, err) == (0, "S-1\tsupervisor,on_call\tdisabled\n", "")
    code, out, err = run(capsys, monkeypatch, "user", "list", "--agency", "tx-el-paso")
    assert (code, out) == (0, "S-1\tsupervisor\tactive\n")
    assert "Castillo" not in out + err and "@" not in out + err


def test_passwd_at_a_terminal_asks_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    users = tmp_path / "users.yaml"
    add = ("user", "add", "--agency", "mo-jackson", "--id", "W-1", "--name", "Alex Rivera")
    assert run(capsys, monkeypatch, *add, "--role", "caseworker", "--file", str(users))[0] == 0

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    typed = iter([NEW_PASSWORD, NEW_PASSWORD + "x", NEW_PASSWORD, NEW_PASSWORD])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(typed))
    passwd = ("user", "passwd", "--agency", "mo-jackson", "--id", "W-1", "--file", str(users))
    monkeypatch.setattr("sys.stdin", Terminal())
    assert main(list(passwd)) == 1
    assert capsys.readouterr().err == (
        "carealert user passwd: the two passwords differ; nothing changed\n"
    )
    assert People.load(users).verify_password("mo-jackson", "W-1", NEW_PASSWORD) is None
    assert main(list(passwd)) == 0
    assert People.load(users).verify_password("mo-jackson", "W-1", NEW_PASSWORD) is not None


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (
            ["--email", "jordan-at-example", "--role", "supervisor"],
            "",
            "carealert user add: --email: not an email address\n",
        ),
        (
            ["--sms", "555 0102", "--role", "supervisor"],
            "",
            "carealert user add: --sms: not an E.164 phone number such as +15555550101\n",
        ),
        (
            ["--role", "supervisor", "--password-stdin"],
            "short-pw\n",
            "carealert user add: a password must be at least 12 characters\n",
        ),
        (
            ["--role", "supervisor", "--role", "supervisor"],
            "",
            "carealert user add: --role: a role is listed twice\n",
        ),
    ],
)
def test_add_refuses_a_bad_field_naming_the_flag_not_the_value(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    stdin: str,
    message: str,
) -> None:
    users = tmp_path / "users.yaml"
    add = ["user", "add", "--agency", "mo-jackson", "--id", "S-1", "--name", "Jordan Price"]
    code, out, err = run(capsys, monkeypatch, *add, *argv, "--file", str(users), stdin=stdin)
    assert (code, out, err) == (1, "", message)
    assert not users.exists()


def test_add_refuses_a_second_person_with_the_same_id_in_the_agency(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    users = str(tmp_path / "users.yaml")
    add = ("user", "add", "--agency", "mo-jackson", "--id", "W-1", "--name", "Alex Rivera")
    assert run(capsys, monkeypatch, *add, "--role", "caseworker", "--file", users)[0] == 0
    code, _, err = run(capsys, monkeypatch, *add, "--role", "supervisor", "--file", users)
    assert (code, err) == (1, "carealert user add: --id: W-1 is already a person of mo-jackson\n")


@pytest.mark.parametrize("command", ["passwd", "disable"])
def test_changing_a_person_of_another_agency_finds_nobody(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    users = str(tmp_path / "users.yaml")
    add = ("user", "add", "--agency", "mo-jackson", "--id", "S-1", "--name", "Jordan Price")
    assert run(capsys, monkeypatch, *add, "--role", "supervisor", "--file", users)[0] == 0
    change = ("user", command, "--agency", "tx-el-paso", "--id", "S-1", "--file", users)
    code, _, err = run(capsys, monkeypatch, *change, stdin=NEW_PASSWORD + "\n")
    assert (code, err) == (1, f"carealert user {command}: --id: no person S-1 in tx-el-paso\n")


def test_a_broken_registry_is_reported_one_problem_a_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    users = tmp_path / "users.yaml"
    users.write_text(
        "version: 1\npeople:\n"
        "  - {id: W-1, agency_id: mo-jackson, name: A, roles: [caseworker], password_hash: pw123}\n"
    )
    code, out, err = run(
        capsys, monkeypatch, "user", "list", "--agency", "mo-jackson", "--file", str(users)
    )
    assert (code, out) == (1, "")
    assert err == f"carealert user list: {users}: people.0.password_hash: not an argon2id hash\n"


def test_a_registry_directory_gets_one_file_per_new_agency(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for agency, name in [("mo-jackson", "Alex Rivera"), ("tx-el-paso", "Dana Ortiz")]:
        add = ("user", "add", "--agency", agency, "--id", "W-1", "--name", name)
        assert (
            run(capsys, monkeypatch, *add, "--role", "caseworker", "--file", str(tmp_path))[0] == 0
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mo-jackson.yaml", "tx-el-paso.yaml"]
    disable = ("user", "disable", "--agency", "tx-el-paso", "--id", "W-1", "--file", str(tmp_path))
    assert run(capsys, monkeypatch, *disable)[0] == 0
    people = People.load(tmp_path)
    assert [
        p.disabled for p in (people.get("mo-jackson", "W-1"), people.get("tx-el-paso", "W-1")) if p
    ] == [False, True]
    assert "Dana" in (tmp_path / "tx-el-paso.yaml").read_text()


@pytest.mark.parametrize(
    "argv",
    [
        ["user", "list", "--agency", "mo-jackson"],
        [
            "user",
            "add",
            "--agency",
            "mo-jackson",
            "--id",
            "W-1",
            "--name",
            "A",
            "--role",
            "caseworker",
        ],
        ["token", "add", "--agency", "mo-jackson", "--role", "operator"],
    ],
)
def test_no_file_given_nor_in_the_environment_is_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    code, out, err = run(capsys, monkeypatch, *argv)
    variable = "CAREALERT_API_TOKENS_FILE" if argv[0] == "token" else "CAREALERT_USERS_FILE"
    assert (code, out) == (2, "")
    assert err == f"carealert {argv[0]} {argv[1]}: no file: give --file or set {variable}\n"


def test_token_add_prints_a_token_once_that_lookup_then_finds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "tokens.yaml"
    monkeypatch.setenv("CAREALERT_API_TOKENS_FILE", str(path))
    operator = ("token", "add", "--agency", "mo-jackson", "--role", "operator", "--person", "S-1")
    code, out, err = run(capsys, monkeypatch, *operator, "--label", "ops laptop")
    assert code == 0
    token = out.strip()
    assert out == token + "\n" and token.startswith("cat_")
    assert token not in err and token not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("version: 1\n")

    receiver = ("token", "add", "--agency", "*", "--role", "receiver", "--receiver", "ncmec")
    code, out, _ = run(capsys, monkeypatch, *receiver)
    assert code == 0
    shared = out.strip()

    tokens = ApiTokens.load(path)
    grant = tokens.lookup(token)
    assert grant is not None
    assert (grant.agency_id, grant.role, grant.person_id, grant.label) == (
        "mo-jackson",
        "operator",
        "S-1",
        "ops laptop",
    )
    shared_grant = tokens.lookup(shared)
    assert shared_grant is not None
    assert (shared_grant.agency_id, shared_grant.role, shared_grant.receiver) == (
        "*",
        "receiver",
        "ncmec",
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--agency", "*", "--role", "operator"],
            'carealert token add: --agency: "*" (every agency) is only for role receiver\n',
        ),
        (
            ["--agency", "*", "--role", "receiver"],
            "carealert token add: --receiver: required for role receiver\n",
        ),
        (
            ["--agency", "mo-jackson", "--role", "auditor", "--receiver", "ncmec"],
            "carealert token add: --receiver: only for role receiver\n",
        ),
        (
            ["--agency", "Mo Jackson", "--role", "auditor"],
            'carealert token add: --agency: not an agency id ([a-z0-9-], 2 to 64 characters) nor "*"\n',
        ),
    ],
)
def test_token_add_refuses_a_bad_scope_and_prints_no_token(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    path = tmp_path / "tokens.yaml"
    code, out, err = run(capsys, monkeypatch, "token", "add", *argv, "--file", str(path))
    assert (code, out, err) == (1, "", message)
    assert not path.exists()


def test_token_add_keeps_the_header_and_entries_of_the_demo_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    demo = Path(__file__).resolve().parents[2] / "deploy" / "local" / "tokens.yaml"
    path = tmp_path / "tokens.yaml"
    path.write_text(demo.read_text())
    code, out, _ = run(
        capsys,
        monkeypatch,
        "token",
        "add",
        "--agency",
        "tx-el-paso",
        "--role",
        "auditor",
        "--file",
        str(path),
    )
    assert code == 0
    text = path.read_text()
    assert text.startswith(demo.read_text().split("version: 1")[0])
    tokens = ApiTokens.load(path, demo=True)
    assert tokens.lookup(out.strip()) is not None
    assert tokens.lookup("demo-receiver-ncmec-not-a-secret") is not None
