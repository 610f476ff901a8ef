"""`make run` (python -m services.run): the whole system up, demo traffic flowing, clean stop."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from httpx_sse import aconnect_sse

from testkit.launcher import Launcher, pid_alive, run_env


async def test_make_run_starts_everything_streams_demo_traffic_and_stops_on_ctrl_c(
    run_launcher: Callable[..., Launcher], run_environment: dict[str, str]
) -> None:
    env = run_environment
    launcher = run_launcher(env)
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
    run_launcher: Callable[..., Launcher], run_environment: dict[str, str]
) -> None:
    launcher = run_launcher(run_environment)
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
    run_launcher: Callable[..., Launcher],
    run_database: str,
    amqp_url: str,
    exchange_name: str,
    tmp_path: Path,
    override: dict[str, str],
    message: str,
) -> None:
    launcher = run_launcher(
        {**run_env(run_database, amqp_url, exchange_name, tmp_path), **override}
    )
    assert launcher.proc.wait(timeout=60) != 0
    assert message in launcher.output()
    assert "Traceback" not in launcher.output()
    assert launcher.child_pids() == {}
