"""ETL fixtures: fast settings, an image directory, and the bus event log of a test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.bus import Bus
from shared.contracts import RoutingKey
from shared.settings import EtlSettings
from testkit.etl import FAST, EventLog


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


@pytest.fixture
async def events(bus: Bus, exchange_name: str) -> AsyncIterator[EventLog]:
    log = EventLog()
    queue = f"{exchange_name}.etl-test"
    await bus.consume(
        queue, [RoutingKey.STAGE2_COMPLETE.value, RoutingKey.STAGE2_FAILED.value], log.handler
    )
    yield log
    await bus.delete_topology(queue)
