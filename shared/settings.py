"""Configuration: one pydantic-settings class per service over a common base.

Every value comes from the environment (names are the upper-cased field names,
no prefix on the common ones); the defaults work against the local PostgreSQL
and RabbitMQ of a developer machine.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    database_url: str = "postgresql://postgres@127.0.0.1:5432/smokesignal"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    exchange_name: str = "smokesignal.events"
    log_level: str = "INFO"
    # Port for the Prometheus /metrics endpoint of non-HTTP services (0 = off).
    metrics_port: int = Field(default=0, ge=0, le=65535)
    db_pool_min: int = Field(default=1, ge=0)
    db_pool_max: int = Field(default=10, ge=1)

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.exchange_name}.dlx"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.exchange_name}.dead-letter"


class EtlSettings(CommonSettings):
    image_dir: Path = Path("data/images")
    etl_concurrency: int = Field(default=4, ge=1, le=256)
    etl_max_attempts: int = Field(default=3, ge=1)
    etl_retry_base_s: float = Field(default=1.0, gt=0)
    etl_retry_max_s: float = Field(default=60.0, gt=0)
    etl_lease_s: float = Field(default=30.0, gt=0)
    etl_poll_interval_s: float = Field(default=2.0, gt=0)
    etl_max_image_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    etl_max_image_pixels: int = Field(default=40_000_000, ge=1)
    etl_thumbnail_px: int = Field(default=320, ge=16)
    outbox_batch_size: int = Field(default=100, ge=1)
    outbox_poll_interval_s: float = Field(default=0.5, gt=0)


class PollerSettings(CommonSettings):
    poller_interval_s: float = Field(default=1.0, gt=0)
    poller_lookback_s: float = Field(default=24 * 3600, gt=0)
    poller_batch_size: int = Field(default=200, ge=1)
    # Extra age beyond the look-back before a broadcast id may be trimmed.
    poller_trim_margin_s: float = Field(default=3600, ge=0)


class GatewaySettings(CommonSettings):
    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=8000, ge=0, le=65535)
    gateway_token: str | None = None
    cors_origins: list[str] = Field(default_factory=list)
    heartbeat_interval_s: float = Field(default=15.0, gt=0)
    replay_buffer_size: int = Field(default=5000, ge=1)
    client_queue_size: int = Field(default=1000, ge=1)
    image_dir: Path = Path("data/images")
    api_max_page_size: int = Field(default=200, ge=1)
