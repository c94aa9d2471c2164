from pathlib import Path

from pydantic import Field

from services.common.settings import CommonSettings


class IngestSettings(CommonSettings):
    ingest_host: str = Field(default="127.0.0.1", description="Address ingest listens on.")
    ingest_port: int = Field(default=8080, ge=1, le=65535)
    ingest_public_url: str = Field(
        default="/",
        pattern=r"^(/|https?://)[^\s?#]*$",
        description=(
            "Base URL clients reach ingest at (e.g. https://ingest.example.org), published as"
            " the OpenAPI document's `servers` entry. Default '/': relative to the URL the"
            " document was fetched from."
        ),
    )
    api_keys_file: Path = Field(
        default=Path("deploy/local/api-keys.yaml"),
        description="YAML file mapping SHA-256 hashes of API keys to agency ids.",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Most bytes a request body may have, both as received and once decoded.",
    )
    max_batch_events: int = Field(default=1000, ge=1)
    publish_timeout_s: float = Field(
        default=10.0, gt=0, description="How long a request waits for Kafka's ack before 503."
    )
    retry_after_s: int = Field(default=5, ge=1, description="Retry-After sent with 503.")
