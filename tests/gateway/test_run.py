"""`make run` (python -m services.run): the whole system up, demo traffic flowing, clean stop."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from httpx_sse import aconnect_sse

from shared.bus import Bus
from testkit.infra import Infra
from testkit.isolation import drop_database, new_database_name, with_database
from testkit.net import free_port
from testkit.processes import REPO_ROOT

START_TIMEOUT_S = 120.0


@dataclass
class Launcher:
    proc: subprocess.Popen[bytes]
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = START_TIMEOUT_S) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.output())
            if match:
                return match
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} not seen; output:\n{self.output()[-6000:]}")

    def child_pids(self) -> dict[str, int]:
        return {m[1]: int(m[2]) for m in re.finditer(r"started (\w+) \(pid (\d+)\)", self.output())}

    def interrupt(self) -> int:
        """Ctrl-C as a terminal sends it: SIGINT to the whole process group."""
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout=90)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


@pytest.fixture
def run_database(infra: Infra) -> Iterator[str]:
    """A database name that does not exist yet (the launcher must create it); dropped after."""
    name = new_database_name("t")
    yield with_database(infra.database_url, name)
    asyncio.run(drop_database(infra.database_url, name))


@pytest.fixture
def launch() -> Iterator[Callable[[dict[str, str]], Launcher]]:
    started: list[Launcher] = []

    def start(env: dict[str, str]) -> Launcher:
        log_path = Path(tempfile.mkstemp(prefix="smokesignal-run-", suffix=".log")[1])
        with log_path.open("ab") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "services.run"],
                cwd=REPO_ROOT,
                env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, like a terminal job
            )
        launcher = Launcher(proc, log_path)
        started.append(launcher)
        return launcher

    yield start
    for launcher in started:
        if launcher.proc.poll() is None:
            os.killpg(launcher.proc.pid, signal.SIGTERM)
            try:
                launcher.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(launcher.proc.pid, signal.SIGKILL)
                launcher.proc.wait(timeout=10)
        for pid in launcher.child_pids().values():
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        launcher.log_path.unlink(missing_ok=True)


def run_env(database_url: str, amqp_url: str, exchange_name: str, tmp_path: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "AMQP_URL": amqp_url,
        "EXCHANGE_NAME": exchange_name,
        "GATEWAY_PORT": str(free_port()),
        "IMAGE_DIR": str(tmp_path / "images"),
        "DEMO_RATE": "5",
        "GATEWAY_TOKEN": "",
        "LOG_LEVEL": "INFO",
    }


async def test_make_run_starts_everything_streams_demo_traffic_and_stops_on_ctrl_c(
    launch, run_database: str, amqp_url: str, exchange_name: str, tmp_path: Path, bus: Bus
) -> None:
    env = run_env(run_database, amqp_url, exchange_name, tmp_path)
    launcher = launch(env)
    url = launcher.wait_for(r"dashboard: (http://\S+)")[1]
    assert url == f"http://127.0.0.1:{env['GATEWAY_PORT']}/"
    assert "created database" in launcher.output()
    assert set(launcher.child_pids()) == {"etl", "poller", "gateway", "generator"}

    # Demo executions flow generator → ETL → poller → gateway → SSE.
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(30, read=None)) as http:
        assert (await http.get("/readyz")).status_code == 200
        async with aconnect_sse(http, "GET", "/api/events") as source:
            seen: set[str] = set()
            async for event in source.aiter_sse():
                seen.add(event.event)
                if {"execution:batch", "etl:stage2:complete"} <= seen:
                    break
        page = (await http.get("/api/executions")).json()
        assert page["items"], page
        image = await http.get(f"/api/executions/{page['items'][-1]['id']}/thumbnail")
        assert image.status_code == 200
        assert image.headers["content-type"].startswith("image/")

    pids = launcher.child_pids()
    assert launcher.interrupt() == 0, launcher.output()[-4000:]
    assert "all services stopped" in launcher.output()
    assert not [name for name, pid in pids.items() if pid_alive(pid)]
    assert "Traceback" not in launcher.output(), launcher.output()[-6000:]


async def test_a_service_that_dies_stops_the_rest_with_an_error(
    launch, run_database: str, amqp_url: str, exchange_name: str, tmp_path: Path, bus: Bus
) -> None:
    launcher = launch(run_env(run_database, amqp_url, exchange_name, tmp_path))
    launcher.wait_for(r"dashboard: ")
    pids = launcher.child_pids()
    os.kill(pids["poller"], signal.SIGKILL)
    assert launcher.proc.wait(timeout=90) == 1
    assert "poller stopped by SIGKILL unexpectedly" in launcher.output()
    assert not [name for name, pid in pids.items() if pid_alive(pid)]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"AMQP_URL": "amqp://guest:guest@127.0.0.1:1/"},
            "RabbitMQ at 127.0.0.1:1 is not reachable",
        ),
        ({"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x"}, "PostgreSQL at 127.0.0.1:1"),
    ],
)
def test_missing_infrastructure_is_a_clear_error(
    launch,
    run_database: str,
    amqp_url: str,
    exchange_name: str,
    tmp_path: Path,
    override: dict[str, str],
    message: str,
) -> None:
    launcher = launch({**run_env(run_database, amqp_url, exchange_name, tmp_path), **override})
    assert launcher.proc.wait(timeout=60) != 0
    assert message in launcher.output()
    assert "Traceback" not in launcher.output()
    assert launcher.child_pids() == {}
