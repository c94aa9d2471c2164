"""The gate's settings (environment `CAREALERT_GATE_*` plus the common ones)."""

from __future__ import annotations

from pydantic import Field

from services.common.settings import CommonSettings


class GateSettings(CommonSettings):
    gate_host: str = Field(
        default="127.0.0.1", description="Address of /metrics, /healthz and /readyz."
    )
    gate_port: int = Field(default=8083, ge=1, le=65535)
    gate_group_id: str = Field(default="carealert-gate", description="The consumer group.")
    gate_topic_refresh_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="How often the gate looks for new agency input topics (Kafka metadata age).",
    )
    gate_batch_max: int = Field(
        default=500, ge=1, description="Most records read, forwarded and committed as one batch."
    )
    gate_session_timeout_s: float = Field(
        default=10.0,
        ge=6,
        description="Consumer session timeout: how long until a dead gate's partitions move.",
    )
