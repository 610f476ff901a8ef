"""Configuration: one pydantic-settings class per service over a common base.

Every value comes from the environment (names are the upper-cased field names,
no prefix on the common ones); the defaults work against the local PostgreSQL
and RabbitMQ of a developer machine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class CommonSettings(BaseSettings):
    # hide_input_in_errors: a bad setting is named, but the environment (secrets
    # such as DATABASE_URL or GATEWAY_TOKEN) is never echoed into the error.
    model_config = SettingsConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)

    database_url: str = "postgresql://postgres@127.0.0.1:5432/smokesignal"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    exchange_name: str = "smokesignal.events"
    log_level: str = "INFO"
    db_pool_min: int = Field(default=1, ge=0)
    db_pool_max: int = Field(default=10, ge=1)
    # Retention of the event stream (the gateways' replayable log), by age and by
    # size, whichever drops a segment first. Age in RabbitMQ's units: Y M D h m s.
    # Every service declares the stream, so all must agree on these two.
    event_stream_max_age: str = Field(default="24h", pattern=r"^[1-9][0-9]*[YMDhms]$")
    event_stream_max_bytes: int = Field(default=1_000_000_000, ge=1_000_000)
    # The dead-letter queue keeps at most this many messages / bytes; past either,
    # RabbitMQ drops the oldest (docs/RELIABILITY.md, "Limits").
    dead_letter_max_length: int = Field(default=10_000, ge=1)
    dead_letter_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1)

    @property
    def dead_letter_bounds(self) -> dict[str, int]:
        """Keyword arguments of `Bus` for the dead-letter queue's bounds."""
        return {
            "dead_letter_max_length": self.dead_letter_max_length,
            "dead_letter_max_bytes": self.dead_letter_max_bytes,
        }


class EtlSettings(CommonSettings):
    # Prometheus /metrics of the ETL worker process (0 = off).
    etl_metrics_port: int = Field(default=0, ge=0, le=65535)
    image_dir: Path = Path("data/images")
    etl_concurrency: int = Field(default=16, ge=1, le=256)
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
    # SIGTERM: in-flight Stage 2 jobs get this long to finish, then are released.
    etl_shutdown_grace_s: float = Field(default=10.0, ge=0)
    # Broker down: outbox publish retries back off up to this.
    outbox_retry_max_s: float = Field(default=5.0, gt=0)
    # Published outbox rows are deleted after this age, checked every interval.
    outbox_retention_s: float = Field(default=24 * 3600, ge=0)
    outbox_cleanup_interval_s: float = Field(default=300.0, gt=0)
    # The WebP rendition fits within this (0 = none); a larger JPEG is decoded at the
    # largest of libjpeg's 1/2, 1/4, 1/8 scales that fits (docs/N8N.md, "Renditions").
    etl_webp_max_px: int = Field(default=640, ge=0)
    # -- n8n as the input source (docs/N8N.md). Unset URL = no n8n source.
    n8n_database_url: str | None = None
    # The workflow whose executions are read (SAI's id; any when unset).
    n8n_workflow_id: str | None = None
    # n8n's filesystem binary store (its N8N_BINARY_DATA_STORAGE_PATH), read-only.
    n8n_binary_data_dir: Path | None = None
    n8n_webhook_node: str = "Webhook"
    n8n_metadata_node: str = "Metadata"
    n8n_inference_node: str = "YOLO Inference"
    n8n_telegram_node: str = "Telegram"
    n8n_image_property: str = "image"
    # The channel the trigger (`python -m services.etl n8n-trigger install`) notifies.
    n8n_notify_channel: str = Field(default="smokesignal_n8n", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    # Catch-up: how often, how many ids per query, and how old an execution must
    # be before the floor may pass it (its id is then surely committed).
    n8n_catchup_interval_s: float = Field(default=10.0, gt=0)
    n8n_catchup_batch: int = Field(default=200, ge=1, le=10_000)
    n8n_catchup_settle_s: float = Field(default=60.0, ge=0)
    # n8n's database unreachable: reconnect attempts back off up to this.
    n8n_retry_max_s: float = Field(default=10.0, gt=0)
    # HTTP ingest for producers other than n8n (0 = off) and its bearer token.
    ingest_port: int = Field(default=0, ge=0, le=65535)
    ingest_host: str = "127.0.0.1"
    ingest_token: str | None = None
    ingest_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1)

    @field_validator("n8n_database_url", "n8n_workflow_id", "ingest_token", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _ingest_needs_a_token(self) -> EtlSettings:
        # Refused before anything starts: an open ingest port would accept anyone.
        if self.ingest_port and self.ingest_token is None:
            raise ValueError(
                "INGEST_PORT is set but INGEST_TOKEN is not: the ingest endpoint needs one"
            )
        return self

    @field_validator("n8n_binary_data_dir", mode="before")
    @classmethod
    def _empty_dir_is_none(cls, value: object) -> object:
        return None if value == "" else value

    # Honour the raw `demo` block (Stage 2 delay, planned transient failures). Off:
    # the block is ignored and that is logged and counted (docs/ETL.md).
    etl_demo_mode: bool = False


class PollerSettings(CommonSettings):
    # Prometheus /metrics of the poller (0 = off).
    poller_metrics_port: int = Field(default=0, ge=0, le=65535)
    poller_interval_s: float = Field(default=1.0, gt=0)
    poller_lookback_s: float = Field(default=24 * 3600, gt=0)
    # At most the contract's MAX_BATCH_EXECUTIONS (one executions.new message).
    poller_batch_size: int = Field(default=200, ge=1, le=500)
    # Extra age beyond the look-back before a broadcast id may be trimmed.
    poller_trim_margin_s: float = Field(default=3600, ge=0)
    poller_trim_interval_s: float = Field(default=300, gt=0)
    # Bounds one tick's publish (and so its open claim transaction) while the broker is away.
    poller_publish_timeout_s: float = Field(default=10.0, gt=0)
    # How long start-up keeps retrying an unreachable broker before giving up.
    poller_connect_retry_s: float = Field(default=60.0, ge=0)
    # Wait for the WAL flush when committing a claim. Off by default: a claim lost
    # in a database crash is re-published (a duplicate), never missed.
    poller_synchronous_commit: bool = False


class GatewaySettings(CommonSettings):
    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=8000, ge=0, le=65535)
    # Worker processes sharing the port (SO_REUSEPORT); 0 = one per CPU core.
    gateway_workers: int = Field(default=0, ge=0, le=256)
    gateway_token: str | None = None
    # CORS_ORIGINS: comma-separated ("http://a,http://b") or a JSON list; "*" allows any.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    heartbeat_interval_s: float = Field(default=15.0, gt=0)
    replay_buffer_size: int = Field(default=5000, ge=1)
    client_queue_size: int = Field(default=1000, ge=1)
    # Byte bounds of the same (docs/RELIABILITY.md, "Limits"): the oldest replay
    # events go first; a client whose queued events pass its bound is dropped.
    replay_buffer_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    client_queue_max_bytes: int = Field(default=8 * 1024 * 1024, ge=1)
    image_dir: Path = Path("data/images")
    api_max_page_size: int = Field(default=200, ge=1)
    # Seconds a dropped client's stream may take to end on its own before it is cut.
    client_drop_grace_s: float = Field(default=1.0, ge=0)
    # A single SSE write blocked this long closes the connection. 0 / unset = off
    # (default): a timer per write cost a quarter of the fan-out CPU, and the hub's
    # queue-full drop + cut after client_drop_grace_s already end stuck clients.
    sse_send_timeout_s: float | None = Field(default=None, ge=0)
    # How long startup waits for PostgreSQL and RabbitMQ to come up.
    gateway_startup_timeout_s: float = Field(default=30.0, ge=0)
    # --- auth (docs/AUTH.md). No GATEWAY_TOKEN and no OIDC_ISSUER = no auth (loud warning).
    # OIDC: bearer JWTs are verified against the issuer's JWKS; the dashboard signs in with
    # the authorization code flow + PKCE (client id, and a secret for confidential clients).
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    # The `aud` bearer JWTs must carry (default: the client id).
    oidc_audience: str | None = None
    # Where the roles are: Zitadel's project-roles claim by default; a dotted path walks
    # nested claims (`realm_access.roles`). Role names: viewer, operator, admin.
    oidc_roles_claim: str = "urn:zitadel:iam:org:project:roles"
    oidc_scopes: str = "openid profile email"
    # Signature algorithms accepted (pinned; "none" and HMAC are never accepted).
    oidc_algorithms: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["RS256"])
    # Bounded clock skew for exp / nbf / iat.
    auth_clock_skew_s: float = Field(default=30.0, ge=0, le=300)
    # How long the issuer's keys are cached; an unknown kid refetches at most this often.
    oidc_jwks_cache_s: float = Field(default=300.0, gt=0)
    oidc_jwks_min_refresh_s: float = Field(default=30.0, ge=0)
    # Dashboard sessions (HttpOnly SameSite=Strict cookie; Secure when served over TLS).
    session_ttl_s: float = Field(default=8 * 3600, gt=0)
    # Failed sign-ins / token checks allowed per client address per minute, then 429.
    auth_failures_per_minute: int = Field(default=20, ge=1)
    # A stalled database: each statement (and each new connection) of the REST API
    # gives up after gateway_db_timeout_s, and a whole REST request (waiting for a
    # pooled connection included) after gateway_request_timeout_s; both answer 503.
    gateway_db_timeout_s: float = Field(default=2.0, gt=0)
    gateway_request_timeout_s: float = Field(default=5.0, gt=0)
    # HTTP limits per process (services/gateway/server.py): a request head larger
    # than this is a 431, one not complete in this time a 408; past this many
    # connections a request gets 503; an idle keep-alive connection is closed.
    gateway_max_head_bytes: int = Field(default=32 * 1024, ge=1024)
    gateway_head_timeout_s: float = Field(default=10.0, gt=0)
    # Above the 10,000 SSE clients one process is benchmarked to hold (docs/BENCHMARKS.md).
    gateway_max_connections: int = Field(default=20_000, ge=1)
    gateway_keep_alive_s: int = Field(default=5, ge=1)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [origin.strip() for origin in text.split(",") if origin.strip()]
        return value

    @field_validator("oidc_algorithms", mode="before")
    @classmethod
    def _split_algorithms(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.replace(",", " ").split() if name.strip()]
        return value

    @field_validator("oidc_algorithms")
    @classmethod
    def _only_asymmetric(cls, value: list[str]) -> list[str]:
        # A JWKS publishes public keys: "none" or an HMAC algorithm would let anyone sign.
        allowed = {
            "RS256",
            "RS384",
            "RS512",
            "PS256",
            "PS384",
            "PS512",
            "ES256",
            "ES384",
            "ES512",
            "EdDSA",
        }
        bad = [name for name in value if name not in allowed]
        if bad or not value:
            raise ValueError(f"OIDC_ALGORITHMS must name some of {sorted(allowed)}, not {bad}")
        return value

    @field_validator("sse_send_timeout_s", mode="before")
    @classmethod
    def _empty_timeout_is_off(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator(
        "gateway_token",
        "oidc_issuer",
        "oidc_client_id",
        "oidc_client_secret",
        "oidc_audience",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        # GATEWAY_TOKEN= (empty) means auth off, not "the empty token"; likewise for OIDC.
        return None if value == "" else value

    @property
    def oidc_enabled(self) -> bool:
        return self.oidc_issuer is not None

    @property
    def expected_audience(self) -> str | None:
        return self.oidc_audience or self.oidc_client_id
