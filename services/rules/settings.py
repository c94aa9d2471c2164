from pathlib import Path

from pydantic import Field

from services.common.settings import CommonSettings


class RulesSettings(CommonSettings):
    rules_host: str = Field(default="127.0.0.1", description="Address of /metrics and /healthz.")
    rules_port: int = Field(default=8081, ge=1, le=65535)
    policy_dir: Path = Field(default=Path("rules"), description="The policy directory.")
    rules_app_id: str = Field(
        default="carealert-rules",
        description="Consumer group and prefix of the state table's changelog topic.",
    )
    rules_store: str = Field(
        default="rocksdb://",
        description="faust table store: rocksdb:// (state on disk, needs rocksdict) or memory://"
        " (state rebuilt from the changelog topic at start).",
    )
    rules_data_dir: Path = Field(default=Path(".run/rules"), description="RocksDB and faust data.")
    tick_interval_s: float = Field(
        default=5.0, gt=0, description="How often deadlines are checked."
    )
    rules_batch_max: int = Field(
        default=500, ge=1, description="Most events evaluated per batch (one flush per batch)."
    )
    rules_batch_within_s: float = Field(
        default=0.02, gt=0, description="Longest wait to fill a batch."
    )
    rules_session_timeout_s: float = Field(
        default=10.0,
        ge=6,
        description="Consumer session timeout: how long until a dead worker's partitions move.",
    )
