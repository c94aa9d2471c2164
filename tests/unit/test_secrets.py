"""Our own secrets are refused when public or weak, unless CAREALERT_ENV=demo; refusals name the
setting, never the value."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.common.secrets import DEMO_SECRETS
from services.ingest.keys import ApiKeys, ApiKeysInvalid
from services.notify.settings import NotifySettings

ROOT = Path(__file__).resolve().parents[2]
STRONG = "Qx7-mN2pL9vR4tY8wK3zB6cF1hJ5dG0s"
OTHER = "aZ9-bY8xC7wD6vE5uF4tG3sH2rI1qJ0p"


def settings(**values: str) -> NotifySettings:
    base = {"ack_secret": STRONG}
    return NotifySettings.model_validate({**base, **values})


@pytest.mark.parametrize("field", ["ack_secret", "webhook_secret", "canary_api_key"])
@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("demo-ack-secret-not-for-production", "is a public demo value"),
        ("demo-canary-not-a-secret", "is a public demo value"),
        ("replace-me-with-32-random-characters", "or a placeholder"),
        ("short-but-random-Xy7", "must be at least 32 characters"),
        ("ab" * 20, "has too little variety"),
    ],
)
def test_weak_or_public_secrets_are_refused_outside_demo(
    field: str, value: str, problem: str
) -> None:
    with pytest.raises(ValidationError) as info:
        settings(**{field: value})
    [err] = info.value.errors(include_input=False)
    assert err["loc"] == (field,)
    assert problem in err["msg"]
    assert value not in err["msg"]  # (the CLI prints these, never the input: see below)
    settings(**{field: value, "env": "demo"})  # a laptop may


def test_placeholders_are_refused_even_in_demo() -> None:
    with pytest.raises(ValidationError):
        settings(ack_secret="changeme", env="demo")


def test_the_demo_keys_file_is_refused_outside_demo() -> None:
    keys = ROOT / "deploy" / "local" / "api-keys.yaml"
    with pytest.raises(ApiKeysInvalid, match=r"keys\.0\.sha256: the hash of a public demo key"):
        ApiKeys.load(keys)
    assert ApiKeys.load(keys, demo=True).agency_for("demo-not-a-secret") == "mo-jackson"


def test_every_demo_value_make_run_uses_is_listed_and_compose_has_none() -> None:
    run_sh = (ROOT / "deploy" / "local" / "run.sh").read_text()
    compose = (ROOT / "docker-compose.yml").read_text()
    for value in (
        "demo-ack-secret-not-for-production",
        "demo-webhook-secret",
    ):
        assert value in DEMO_SECRETS and value in run_sh
        assert value not in compose


def test_notify_refuses_to_start_with_a_demo_secret_and_says_which() -> None:
    env = {
        **os.environ,
        "CAREALERT_ACK_SECRET": "demo-ack-secret-not-for-production",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
    }
    env.pop("CAREALERT_ENV", None)
    done = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "carealert"), "notify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "CAREALERT_ACK_SECRET: Value error, is a public demo value" in done.stderr
    assert "demo-ack-secret-not-for-production" not in done.stderr
