"""`make run-n8n` (python -m services.run --n8n): a local n8n, the camera simulator and the
whole system come up, n8n's runs reach an SSE client with their data, and Ctrl-C stops
everything — n8n (a process group of its own) included — and drops n8n's database."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import pytest
from httpx_sse import aconnect_sse

from testkit.infra import Infra
from testkit.launcher import Launcher, group_alive, pid_alive

COMPLETIONS = 3


@pytest.mark.timeout(900)  # deadlock guard: n8n's start on a loaded 2-core machine
async def test_run_n8n_delivers_n8n_runs_to_sse_and_stops_everything_on_ctrl_c(
    run_launcher: Callable[..., Launcher], run_environment: dict[str, str], infra: Infra
) -> None:
    launcher = run_launcher({**run_environment, "N8N_CATCHUP_SETTLE_S": "5"}, "--n8n")
    url = launcher.wait_for(r"dashboard: (http://\S+)", timeout=300)[1]
    pids = launcher.child_pids()
    assert set(pids) == {"n8n", "etl", "poller", "gateway"}, "no demo generator beside n8n"
    n8n_database = launcher.wait_for(r"started n8n .*, database (\w+)")[1]
    assert n8n_database in await _n8n_databases(infra)

    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(30, read=None)) as http:
        completed: list[dict[str, Any]] = []
        async with aconnect_sse(http, "GET", "/api/events") as source:
            async for event in source.aiter_sse():
                if event.event == "etl:stage2:complete":
                    completed.append(json.loads(event.data))
                    if len(completed) == COMPLETIONS:
                        break
        for done in completed:
            assert done["extracted_data"]["has_image"] is True
            detail = (await http.get(f"/api/executions/{done['execution_id']}")).json()
            # What the camera simulator sent and the YOLO stand-in answered, through n8n.
            assert detail["device_id"].startswith("sai-cam-node-")
            assert detail["model_version"] == "yolov8s-sai-standin-1"
            assert detail["alert_level"] in ("none", "low", "medium", "high", "critical")
            assert detail["image_width"] > 0 and detail["has_webp"] is True
            assert (detail["telegram_message_id"] is not None) == bool(detail["telegram_sent"])
            image = await http.get(f"/api/executions/{done['execution_id']}/image")
            assert image.headers["content-type"] == "image/jpeg"

    assert launcher.interrupt() == 0, launcher.output()[-6000:]
    output = launcher.output()
    assert "all services stopped" in output and "Traceback" not in output, output[-6000:]
    assert not [name for name, pid in pids.items() if name != "n8n" and pid_alive(pid)]
    assert not group_alive(pids["n8n"]), "n8n or a child of it outlived Ctrl-C"
    assert n8n_database not in await _n8n_databases(infra), "n8n's database is dropped"


async def _n8n_databases(infra: Infra) -> set[str]:
    conn = await asyncpg.connect(infra.database_url)
    try:
        rows = await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE 'n8n_%'")
    finally:
        await conn.close()
    return {r["datname"] for r in rows}
