"""The console reads the people registry again when its file changes: a person disabled with
`carealert user disable` is signed out without a restart; a file that no longer loads keeps the
last good registry."""

from __future__ import annotations

from pathlib import Path

import yaml

from services.common.people import hash_password
from services.console.registry import Registry

HASH = hash_password("correct horse battery staple")


def _write(path: Path, disabled: bool) -> None:
    entry = {
        "id": "W-1",
        "agency_id": "mo-jackson",
        "name": "Alex Rivera",
        "roles": ["caseworker"],
        "password_hash": HASH,
        "disabled": disabled,
    }
    path.write_text(yaml.safe_dump({"version": 1, "people": [entry]}))


def test_a_change_to_the_file_is_read_at_the_next_look(tmp_path: Path) -> None:
    path = tmp_path / "people.yaml"
    _write(path, disabled=False)
    registry = Registry.load(path, every_s=0)
    person = registry.current().get("mo-jackson", "W-1")
    assert person is not None and not person.disabled
    _write(path, disabled=True)
    person = registry.current().get("mo-jackson", "W-1")
    assert person is not None and person.disabled


def test_a_broken_file_keeps_the_last_good_registry(tmp_path: Path) -> None:
    path = tmp_path / "people.yaml"
    _write(path, disabled=False)
    registry = Registry.load(path, every_s=0)
    path.write_text("version: 1\npeople: [{id: W-1}]\n")
    assert registry.current().get("mo-jackson", "W-1") is not None


def test_it_looks_no_more_often_than_asked(tmp_path: Path) -> None:
    path = tmp_path / "people.yaml"
    _write(path, disabled=False)
    registry = Registry.load(path, every_s=3600)
    _write(path, disabled=True)
    person = registry.current().get("mo-jackson", "W-1")
    assert person is not None and not person.disabled
