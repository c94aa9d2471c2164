"""The console projector's settings (environment `CAREALERT_*`, Kafka as every service)."""

from __future__ import annotations

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
