"""The hardening suite: each hostile input of issue 19, replayed against real services.

`gateway_process` runs the gateway exactly as production does
(`python -m services.gateway`: the uvicorn options and HTTP limits of
services/gateway/server.py) on this test's database and exchange.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from testkit.net import free_port, wait_http_ready
from testkit.processes import ServiceProcess


@dataclass
class GatewayProcess:
    base_url: str
    port: int
    process: ServiceProcess


GatewayProcessFactory = Callable[..., Awaitable[GatewayProcess]]


@pytest.fixture
def gateway_process(
    service_env: dict[str, str],
    service_process: Callable[..., ServiceProcess],
    tmp_path: Path,
) -> GatewayProcessFactory:
    """Factory: await gateway_process(DATABASE_URL=…, GATEWAY_…=…) -> a ready gateway."""

    async def start(**overrides: str) -> GatewayProcess:
        port = free_port()
        env = {
            **service_env,
            "GATEWAY_PORT": str(port),
            "IMAGE_DIR": str(tmp_path / "images"),
            "METRICS_PORT": "0",
            "GATEWAY_TOKEN": "",
            "GATEWAY_STARTUP_TIMEOUT_S": "10",
            # One worker process: the per-process limits are what is tested.
            "GATEWAY_WORKERS": "1",
            **overrides,
        }
        process = service_process(["services.gateway"], env, name="gateway")
        base_url = f"http://127.0.0.1:{port}"
        await wait_http_ready(base_url, process, path="/healthz")
        return GatewayProcess(base_url, port, process)

    return start
