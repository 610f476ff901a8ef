"""Launch the gateway for a test or a benchmark: in-process under uvicorn, or as a subprocess."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from services.gateway.app import create_app
from services.gateway.front import uvicorn_options
from services.gateway.hub import Hub
from services.gateway.server import GatewayServer
from shared.settings import GatewaySettings
from testkit.forked import ForkedProcess
from testkit.net import free_port, wait_http_ready
from testkit.processes import ManagedProcess, ServiceProcess
from testkit.waiting import WAIT_S


@dataclass
class Gateway:
    base_url: str
    settings: GatewaySettings
    server: uvicorn.Server
    task: asyncio.Task[None]

    @property
    def hub(self) -> Hub:
        hub: Hub = self.server.config.app.state.resources.hub  # type: ignore[union-attr]
        return hub

    async def stop(self) -> None:
        if not self.task.done():
            self.server.should_exit = True
            await asyncio.wait_for(self.task, WAIT_S)


async def start_gateway(settings: GatewaySettings, static_dir: Path | None = None) -> Gateway:
    app = (
        create_app(settings) if static_dir is None else create_app(settings, static_dir=static_dir)
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=2,
        access_log=False,
        # As in production: /api/events on the lean path (services/gateway/front.py).
        **uvicorn_options(settings),
    )
    resources = app.state.resources
    server = GatewayServer(config, on_shutdown=[resources.hub.close])
    task = asyncio.create_task(server.serve(sockets=[sock]))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not server.started:
        if task.done():
            task.result()  # startup failed: raise its error
            raise RuntimeError("gateway exited during startup")
        if loop.time() > deadline:
            raise TimeoutError("gateway did not start")
        await asyncio.sleep(0.02)
    return Gateway(f"http://127.0.0.1:{port}", settings, server, task)


GatewayFactory = Callable[..., Awaitable[Gateway]]


class GatewayProcess:
    """`python -m services.gateway` (or a module that wraps it) on a free loopback port;
    `forked`: a `testkit.forked.ForkedProcess` (the caller preloads the module)."""

    def __init__(
        self,
        env: dict[str, str],
        module: str = "services.gateway",
        *,
        port: int | None = None,
        forked: bool = False,
        **settings: object,
    ) -> None:
        self.port = port or free_port()
        full_env = {
            **env,
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(self.port),
            **{key.upper(): str(value) for key, value in settings.items()},
        }
        name = f"gateway:{self.port}"
        # forked: from the fork server (testkit.forked), without paying for the imports.
        self.process: ManagedProcess = (
            ForkedProcess(module, full_env, name)
            if forked
            else ServiceProcess([module], full_env, name)
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    async def start(self, within_s: float = 60, *, path: str = "/readyz") -> GatewayProcess:
        """Start it and wait for `path` (fails early with its output if it exits)."""
        self.process.start()
        await wait_http_ready(self.base_url, self.process, path=path, timeout_s=within_s)
        return self

    def stop(self) -> None:
        self.process.cleanup()


# A fixture's factory of started gateway processes.
GatewayStarter = Callable[..., Awaitable[GatewayProcess]]
