"""Start the project's services as subprocesses for a benchmark and wait until ready."""

from __future__ import annotations

import asyncio
import time

import httpx

from bench.nchan import free_port
from bench.processes import ManagedProcess


class Gateway:
    """`python -m services.gateway` on a free loopback port."""

    def __init__(
        self, env: dict[str, str], module: str = "services.gateway", **settings: object
    ) -> None:
        self.port = free_port()
        full_env = {
            **env,
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(self.port),
            **{k.upper(): str(v) for k, v in settings.items()},
        }
        self.process = ManagedProcess.python_module([module], full_env, "gateway")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    async def start(self, within_s: float = 60) -> Gateway:
        self.process.start()
        deadline = time.monotonic() + within_s
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2) as http:
            while time.monotonic() < deadline:
                self.process.check_running()
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise TimeoutError(f"gateway not ready; output:\n{self.process.output()[-3000:]}")

    def stop(self) -> None:
        self.process.stop()


def etl_worker(env: dict[str, str], name: str = "etl-worker", **settings: object) -> ManagedProcess:
    full_env = {**env, **{k.upper(): str(v) for k, v in settings.items()}}
    return ManagedProcess.python_module(["services.etl", "worker"], full_env, name)


def poller(env: dict[str, str], **settings: object) -> ManagedProcess:
    full_env = {**env, **{k.upper(): str(v) for k, v in settings.items()}}
    return ManagedProcess.python_module(["services.poller"], full_env, "poller")
