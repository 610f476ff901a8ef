"""ETL test helpers: fast settings, an in-process ETL service, and a bus event log."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.demo.generator import make_raw_execution
from services.etl.service import run_etl_service
from services.etl.stage1.ingest import ingest_execution
from shared.bus import Bus, Delivery
from shared.contracts import RoutingKey
from shared.settings import EtlSettings

WAIT_S = 30.0  # deadlock guard only, never a performance expectation

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
}


def fast_env(settings: EtlSettings) -> dict[str, str]:
    """The same settings as environment variables for a service subprocess."""
    env = {key.upper(): str(value) for key, value in FAST.items()}
    env["IMAGE_DIR"] = str(settings.image_dir)
    return env


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    return tmp_path / "images"


@pytest.fixture
def etl_settings(
    database_url: str, amqp_url: str, exchange_name: str, image_dir: Path
) -> EtlSettings:
    return EtlSettings(
        database_url=database_url,
        amqp_url=amqp_url,
        exchange_name=exchange_name,
        image_dir=image_dir,
        **FAST,  # type: ignore[arg-type]
    )


async def wait_until(
    condition: Callable[[], Awaitable[bool]],
    what: str,
    *,
    max_wait_s: float = WAIT_S,
    alive: Iterable[asyncio.Task[Any]] = (),
) -> None:
    """Poll `condition`; fail if it stays false (or a guarded task dies) for `max_wait_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_wait_s
    while not await condition():
        for task in alive:
            if task.done():
                task.result()  # re-raise its error
                raise AssertionError(f"service stopped while waiting for {what}")
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


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


@pytest.fixture
async def events(bus: Bus, exchange_name: str) -> AsyncIterator[EventLog]:
    log = EventLog()
    queue = f"{exchange_name}.etl-test"
    await bus.consume(
        queue, [RoutingKey.STAGE2_COMPLETE.value, RoutingKey.STAGE2_FAILED.value], log.handler
    )
    yield log
    await bus.delete_topology(queue)


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
