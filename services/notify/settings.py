from pathlib import Path

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from services.common.secrets import weakness
from services.common.settings import CommonSettings

PLACEHOLDERS = frozenset({"", "changeme", "change-me", "changethis", "secret"})


class NotifySettings(CommonSettings):
    notify_host: str = Field(default="127.0.0.1")
    notify_port: int = Field(default=8082, ge=1, le=65535)
    notify_public_url: str = Field(
        default="http://127.0.0.1:8082", description="Base URL of ack links in messages."
    )
    policy_dir: Path = Field(default=Path("rules"), description="routing.yaml and templates/.")
    notify_group_id: str = Field(default="carealert-notify")
    ack_secret: SecretStr = Field(description="Key that signs ack links (HMAC-SHA256).")
    ack_token_ttl_s: float = Field(
        default=7 * 86400, gt=0, description="How long an ack link works (default 7 days)."
    )
    users_file: Path | None = Field(
        default=None,
        description="The people registry (a YAML file or a directory of them); unset: nobody.",
    )
    api_tokens_file: Path | None = Field(
        default=None,
        description="Operator API tokens, one agency and role each (hashes only); unset: none.",
    )
    webhook_secret: SecretStr | None = Field(
        default=None, description="Key for webhooks whose secret_env is CAREALERT_WEBHOOK_SECRET."
    )
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=2525, ge=1, le=65535)
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_sender: str = "carealert@localhost"
    retry_max_attempts: int = Field(default=5, ge=1, le=50)
    retry_base_s: float = Field(default=1.0, gt=0)
    retry_max_s: float = Field(default=60.0, gt=0)
    notify_tick_s: float = Field(default=1.0, gt=0, description="Reminder/escalation check period.")
    notify_max_in_flight: int = Field(
        default=1000, ge=1, description="Escalations handled at once."
    )
    notify_receiver_concurrency: int = Field(
        default=16,
        ge=1,
        le=1000,
        description="HTTP requests to one receiver, and SMTP sessions to the relay, at once.",
    )
    canary_ingest_url: str | None = Field(
        default=None,
        description="Ingest's base URL for the canary (proof of life); unset: no canaries.",
    )
    canary_api_key: SecretStr | None = Field(
        default=None, description="An API key of the reserved agency carealert-canary."
    )
    canary_interval_s: float = Field(
        default=300.0, ge=1, description="How often a canary event is sent."
    )
    notify_fault_file: Path | None = Field(
        default=None,
        description="Testing only: if this file exists when an offset is about to be committed, "
        "delete it and exit at once (simulates a crash after the effect, before the commit).",
    )

    @field_validator("ack_secret", "webhook_secret", "canary_api_key")
    @classmethod
    def strong(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        """Our own secrets: never a placeholder; strong unless CAREALERT_ENV=demo."""
        if value is None:
            return value
        secret = value.get_secret_value()
        if secret.strip().lower() in PLACEHOLDERS:
            raise ValueError("must be a real secret, not a placeholder")
        problem = weakness(secret)
        if problem and info.data.get("env") != "demo":
            raise ValueError(f"{problem} (or set CAREALERT_ENV=demo on a laptop)")
        return value
