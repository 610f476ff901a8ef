"""The hardening suite: each hostile input of issue 19, replayed against real services.

`gateway_process` runs the gateway exactly as production does
(`python -m services.gateway`: the uvicorn options and HTTP limits of
services/gateway/server.py) on this test's database and exchange.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from testkit.gateway import GatewayProcess, GatewayStarter


@pytest.fixture
async def gateway_process(
    service_env: dict[str, str], tmp_path: Path
) -> AsyncIterator[GatewayStarter]:
    """Factory: await gateway_process(DATABASE_URL=…, GATEWAY_…=…) -> a live gateway
    (/healthz: a test may have cut its database on purpose)."""
    started: list[GatewayProcess] = []

    async def start(**overrides: str) -> GatewayProcess:
        env = {
            **service_env,
            "IMAGE_DIR": str(tmp_path / "images"),
            "METRICS_PORT": "0",
            "GATEWAY_TOKEN": "",
            "GATEWAY_STARTUP_TIMEOUT_S": "10",
            # One worker process: the per-process limits are what is tested.
            "GATEWAY_WORKERS": "1",
            **overrides,
        }
        gateway = GatewayProcess(env)
        started.append(gateway)
        return await gateway.start(path="/healthz")

    yield start
    for gateway in started:
        gateway.stop()
