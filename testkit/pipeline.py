"""The whole system as real processes: ETL worker(s), poller and gateway on one database/exchange.

Used by the chaos run and the cross-service bad-input tests. Settings are the
fast ones the brief asks for in tests (short leases, retries and poll intervals).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from testkit.net import free_port, wait_http_ready
from testkit.processes import ServiceProcess
from testkit.tcp_proxy import ProxyFactory, TcpProxy

READY_TIMEOUT_S = 120.0  # deadlock guard only

COMMANDS: dict[str, list[str]] = {
    "etl": ["services.etl", "worker"],
    "poller": ["services.poller"],
    "gateway": ["services.gateway"],
}

FAST_ETL = {
    "ETL_CONCURRENCY": "8",
    "ETL_LEASE_S": "3",
    "ETL_RETRY_BASE_S": "0.1",
    "ETL_RETRY_MAX_S": "1",
    "ETL_POLL_INTERVAL_S": "0.5",
    "ETL_SHUTDOWN_GRACE_S": "2",
    "OUTBOX_POLL_INTERVAL_S": "0.2",
    "OUTBOX_RETRY_MAX_S": "1",
    "ETL_DEMO_MODE": "true",  # the chaos run's Stage 2 delays and transient failures
}
FAST_POLLER = {"POLLER_INTERVAL_S": "0.2", "POLLER_PUBLISH_TIMEOUT_S": "5"}
FAST_GATEWAY = {"HEARTBEAT_INTERVAL_S": "1", "GATEWAY_STARTUP_TIMEOUT_S": "120"}


def fast_amqp_url(url: str) -> str:
    """aio-pika reconnects after 0.3 s instead of 5 s."""
    return f"{url}{'&' if '?' in url else '?'}reconnect_interval=0.3"


def pipeline_env(
    service_env: dict[str, str], *, image_dir: Path, gateway_port: int, **overrides: str
) -> dict[str, str]:
    return {
        **service_env,
        **FAST_ETL,
        **FAST_POLLER,
        **FAST_GATEWAY,
        "IMAGE_DIR": str(image_dir),
        "GATEWAY_PORT": str(gateway_port),
        "ETL_METRICS_PORT": "0",
        "POLLER_METRICS_PORT": "0",
        **overrides,
    }


@dataclass(frozen=True)
class ProxiedEnv:
    """A pipeline's environment whose database and broker are reached through proxies."""

    env: dict[str, str]
    database: TcpProxy
    broker: TcpProxy
    database_url: str  # through `database`


@dataclass
class Pipeline:
    """Named service processes; `base_url` is the gateway's."""

    base_url: str
    processes: dict[str, ServiceProcess]

    def __getitem__(self, name: str) -> ServiceProcess:
        return self.processes[name]

    def outputs(self, tail: int = 3000) -> str:
        return "\n".join(
            f"--- {name} ---\n{proc.output()[-tail:]}" for name, proc in self.processes.items()
        )

    async def wait_ready(self) -> None:
        await wait_http_ready(self.base_url, self.processes["gateway"], timeout_s=READY_TIMEOUT_S)


def etl_worker(env: dict[str, str], name: str = "etl-worker", **settings: object) -> ServiceProcess:
    """An ETL worker process (not started); settings become environment variables.

    In demo mode: the tests and benchmarks that start workers this way use the raw
    `demo` block (Stage 2 delays for out-of-order completion, planned failures).
    """
    full_env = {**env, "ETL_DEMO_MODE": "true", **{k.upper(): str(v) for k, v in settings.items()}}
    return ServiceProcess(COMMANDS["etl"], full_env, name)


def poller(env: dict[str, str], **settings: object) -> ServiceProcess:
    """A poller process (not started); settings become environment variables."""
    full_env = {**env, **{k.upper(): str(v) for k, v in settings.items()}}
    return ServiceProcess(COMMANDS["poller"], full_env, "poller")


def start_pipeline(
    service_process: Callable[..., ServiceProcess],
    env: dict[str, str],
    *,
    etl_workers: int = 1,
) -> Pipeline:
    """Start the gateway, `etl_workers` ETL processes and the poller (not waiting for them)."""
    names = {"gateway": "gateway", "poller": "poller"}
    names.update({f"etl-{i}": "etl" for i in range(1, etl_workers + 1)})
    processes = {name: service_process(COMMANDS[kind], env, name) for name, kind in names.items()}
    return Pipeline(f"http://127.0.0.1:{env['GATEWAY_PORT']}", processes)


@dataclass(frozen=True)
class Pipelines:
    """Starts pipelines on one test's database and exchange (the `pipelines` fixture)."""

    service_env: dict[str, str]
    service_process: Callable[..., ServiceProcess]
    tcp_proxy: ProxyFactory
    database_url: str
    amqp_url: str
    image_dir: Path

    def env(self, **overrides: str) -> dict[str, str]:
        """`pipeline_env` on a free gateway port."""
        return pipeline_env(
            self.service_env, image_dir=self.image_dir, gateway_port=free_port(), **overrides
        )

    def proxied(self, **overrides: str) -> ProxiedEnv:
        """`env` with DATABASE_URL and AMQP_URL (fast reconnect) through cuttable proxies."""
        database, proxied_database = self.tcp_proxy(self.database_url)
        broker, proxied_broker = self.tcp_proxy(self.amqp_url)
        env = self.env(
            DATABASE_URL=proxied_database, AMQP_URL=fast_amqp_url(proxied_broker), **overrides
        )
        return ProxiedEnv(env, database, broker, proxied_database)

    def start(self, env: dict[str, str], *, etl_workers: int = 1) -> Pipeline:
        return start_pipeline(self.service_process, env, etl_workers=etl_workers)

    async def ready(self, **overrides: str) -> Pipeline:
        """A pipeline on `env(**overrides)`, its gateway ready."""
        pipeline = self.start(self.env(**overrides))
        await pipeline.wait_ready()
        return pipeline


async def database_state(pool: asyncpg.Pool) -> dict[str, Any]:
    """Counts that say whether the pipeline has settled, and whether anything is off."""
    row = await pool.fetchrow(
        """SELECT
             (SELECT count(*) FROM executions) AS executions,
             (SELECT count(*) FROM executions WHERE processing_stage = 'stage2') AS completed,
             (SELECT count(*) FROM executions WHERE processing_stage = 'failed') AS failed,
             (SELECT count(*) FROM stage2_jobs
               WHERE status NOT IN ('completed', 'failed')) AS jobs_open,
             (SELECT count(*) FROM outbox WHERE published_at IS NULL) AS outbox_unpublished,
             (SELECT count(*) FROM outbox) AS outbox_rows,
             (SELECT count(*) FROM broadcast_backlog) AS backlog,
             (SELECT count(*) FROM broadcast_ids) AS broadcast,
             (SELECT count(*) FROM rejected_inputs) AS rejected_inputs"""
    )
    assert row is not None
    return dict(row)


def settled(state: dict[str, Any], expected_executions: int) -> bool:
    return bool(
        state["executions"] == expected_executions
        and state["completed"] + state["failed"] == expected_executions
        and state["jobs_open"] == 0
        and state["outbox_unpublished"] == 0
        and state["backlog"] == 0
    )
