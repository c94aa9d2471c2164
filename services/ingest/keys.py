"""API keys: each key belongs to exactly one agency. Only SHA-256 hashes are stored.

File format (YAML)::

    keys:
      - agency_id: demo-agency
        label: demo          # for operators; never logged with the key
        sha256: 5e88...      # services.common.secrets.secret_hash(key)
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from services.common.events import AgencyId
from services.common.secrets import DEMO_KEY_HASHES, secret_hash


class ApiKeysInvalid(ValueError):
    """The keys file can not be used; the message names the file and the problem."""


class _Key(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    agency_id: AgencyId
    label: str = ""
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class _KeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    keys: tuple[_Key, ...]


def new_key() -> str:
    """A fresh random API key (256 bits, URL-safe)."""
    return "ca_" + secrets.token_urlsafe(32)


class ApiKeys:
    """Maps presented keys to agency ids."""

    def __init__(self, by_hash: dict[str, str]) -> None:
        self._by_hash = dict(by_hash)

    @classmethod
    def load(cls, path: Path, demo: bool = False) -> ApiKeys:
        """Read a keys file. Raises ApiKeysInvalid naming the file, the entry and the field.
        The public demo keys are refused unless `demo` (CAREALERT_ENV=demo)."""
        try:
            raw = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise ApiKeysInvalid(f"{path}: cannot read ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            raise ApiKeysInvalid(f"{path}: not valid YAML ({exc})") from None
        try:
            parsed = _KeysFile.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors(include_input=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ApiKeysInvalid(f"{path}: {where}: {first['msg']}") from None
        by_hash: dict[str, str] = {}
        for i, k in enumerate(parsed.keys):
            if k.sha256 in by_hash:
                raise ApiKeysInvalid(f"{path}: keys.{i}.sha256: duplicate key hash")
            if k.sha256 in DEMO_KEY_HASHES and not demo:
                raise ApiKeysInvalid(
                    f"{path}: keys.{i}.sha256: the hash of a public demo key; issue real keys"
                    " with `carealert apikey` (or set CAREALERT_ENV=demo on a laptop)"
                )
            by_hash[k.sha256] = k.agency_id
        return cls(by_hash)

    def agency_for(self, presented: str) -> str | None:
        """The agency id the key belongs to, or None for an unknown key."""
        return self._by_hash.get(secret_hash(presented))
