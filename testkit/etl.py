"""ETL test helpers: fast settings, an in-process ETL service, a bus event log, the CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from services.demo.generator import make_raw_execution
from services.etl.service import run_etl_service
from services.etl.stage1.ingest import ingest_execution
from shared.bus import Delivery
from shared.contracts import RoutingKey
from shared.settings import EtlSettings
from testkit.processes import REPO_ROOT
from testkit.waiting import WAIT_S, wait_until

# Short leases and backoffs keep the suite fast.
FAST = {
    "etl_concurrency": 4,
    "etl_lease_s": 1.0,
    "etl_retry_base_s": 0.05,
    "etl_retry_max_s": 0.2,
    "etl_poll_interval_s": 0.2,
    "etl_shutdown_grace_s": 5.0,
    "outbox_poll_interval_s": 0.1,
    "outbox_retry_max_s": 0.5,
    "etl_demo_mode": True,  # the ETL tests use the raw demo block
}


def fast_env(settings: EtlSettings) -> dict[str, str]:
    """The same settings as environment variables for a service subprocess."""
    env = {key.upper(): str(value) for key, value in FAST.items()}
    env["IMAGE_DIR"] = str(settings.image_dir)
    return env


class EventLog:
    """Every stage2.* message the bus delivered to this test, in arrival order."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []

    async def handler(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)

    def for_execution(self, execution_id: int) -> list[Delivery]:
        return [d for d in self.deliveries if d.message.execution_id == execution_id]  # type: ignore[union-attr]

    def kinds(self, execution_id: int) -> list[str]:
        return [d.routing_key for d in self.for_execution(execution_id)]

    async def wait_for(
        self,
        predicate: Callable[[list[Delivery]], bool],
        what: str,
        *,
        alive: Iterable[asyncio.Task[Any]] = (),
    ) -> list[Delivery]:
        async def met() -> bool:
            return predicate(self.deliveries)

        await wait_until(met, what, alive=alive)
        return self.deliveries

    async def wait_completed(
        self, execution_ids: Iterable[int], *, alive: Iterable[asyncio.Task[Any]] = ()
    ) -> None:
        wanted = set(execution_ids)

        def done(deliveries: list[Delivery]) -> bool:
            seen = {
                d.message.execution_id  # type: ignore[union-attr]
                for d in deliveries
                if d.routing_key == RoutingKey.STAGE2_COMPLETE
            }
            return wanted <= seen

        await self.wait_for(done, f"stage2.complete for {sorted(wanted)}", alive=alive)


@asynccontextmanager
async def running_etl(settings: EtlSettings) -> AsyncIterator[asyncio.Task[None]]:
    """The `worker` process's service, in-process; stopped gracefully on exit."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_etl_service(settings, stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT_S)


async def ingest(pool: asyncpg.Pool, execution_id: int, **kwargs: Any) -> dict[str, Any]:
    """Ingest a generated raw execution; returns the raw dict."""
    raw = make_raw_execution(execution_id, **kwargs)
    await ingest_execution(pool, json.dumps(raw))
    return raw


def run_etl_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m services.etl ARGS…` to completion, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "services.etl", *args],
        cwd=REPO_ROOT,
        env={**env, "LOG_LEVEL": "WARNING", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
