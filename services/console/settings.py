"""The console projector's settings (environment `CAREALERT_*`, Kafka as every service)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from services.common.settings import CommonSettings
from services.console.db import DEFAULT_URL


class ConsoleSettings(CommonSettings):
    database_url: SecretStr = Field(
        default=SecretStr(DEFAULT_URL),
        description="SQLAlchemy URL of the read model: sqlite:///PATH (one machine) or"
        " postgresql+psycopg://USER:PASSWORD@HOST:5432/DB. Secret: it may hold a password.",
    )
    console_batch_max: int = Field(
        default=500, ge=1, le=10_000, description="Most records written in one transaction."
    )
    console_poll_s: float = Field(
        default=0.5, gt=0, le=30, description="How long one poll waits for records."
    )
    console_host: str = Field(
        default="127.0.0.1", description="Where `carealert console serve` listens."
    )
    # 8083 is the gate's (it came first); the console takes the next port.
    console_port: int = Field(default=8084, ge=1, le=65535)
    policy_dir: Path = Field(
        default=Path("rules"), description="The policy directory: routing.yaml and agencies/."
    )
    users_file: Path | None = Field(
        default=None, description="The people registry (who may sign in; argon2id passwords)."
    )
    ack_secret: SecretStr | None = Field(
        default=None,
        description="notify's CAREALERT_ACK_SECRET: the console signs acknowledgements with it.",
    )
    notify_url: str = Field(
        default="http://127.0.0.1:8082", description="Where notify's API answers (acks, notes)."
    )
    console_idle_timeout_s: float = Field(
        default=900, ge=5, le=8 * 3600, description="Sign a person out after this long idle."
    )
    console_lockout_failures: int = Field(
        default=5, ge=1, le=100, description="Wrong passwords in a row that lock a sign-in."
    )
    console_lockout_s: float = Field(
        default=900, ge=1, le=86_400, description="How long a locked sign-in stays refused."
    )
    console_public_url: str | None = Field(
        default=None,
        pattern=r"^https?://[A-Za-z0-9.\-\[\]:]+/?$",
        description="The console's address as people's browsers see it behind a proxy"
        " (https://console.agency.example): forms must come from it, and an https one makes the"
        " session cookie Secure.",
    )
    console_refresh_s: float = Field(
        default=5, ge=1, le=300, description="How often the Now page refreshes its rows."
    )
