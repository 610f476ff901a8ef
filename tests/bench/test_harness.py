"""The benchmark harness works (tiny scale). Nothing here is timed: figures are bench's job."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bench.__main__ import QUICK
from bench.clients.old_polling import OldPollingBaseline
from bench.clients.sse_load import FanoutClient, FanoutConnection
from bench.clients.swarm import shares
from bench.harness.nchan import installed as nchan_installed
from bench.harness.stats import percentile
from testkit.poller import old_cursor_select as select_new
from testkit.processes import REPO_ROOT

MARKER = b'"processing_time_ms"'


async def test_load_client_counts_a_marker_split_across_reads() -> None:
    client = FanoutClient("127.0.0.1", 1, "/", 1, MARKER, max_events=3)
    connection = FanoutConnection(client, 0)
    connection.data_received(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n")
    event = b'data: {"execution_id":1,"processing_time_ms":2}\n\n'
    stream = event * 3
    for cut in (10, 27, 33, 70, 71, 100):  # arbitrary read boundaries, some inside a marker
        connection.data_received(stream[:cut])
        stream = stream[cut:]
    connection.data_received(stream)
    assert connection.count == 3
    assert [client.received(k) for k in range(3)] == [1, 1, 1]
    assert connection.ready.done()


async def test_load_client_counts_heartbeats_beside_events() -> None:
    """Two markers: the shorter one may sit whole in the kept tail; it is counted once."""
    client = FanoutClient("127.0.0.1", 1, "/", 1, MARKER, max_events=2, beat_marker=b"event: hb")
    connection = FanoutConnection(client, 0)
    connection.data_received(b"HTTP/1.1 200 OK\r\n\r\n")
    stream = b"event: hb\r\ndata: {}\r\n\r\n" + b'data: {"processing_time_ms":2}\n\n' * 2
    stream += b"event: hb\r\n\r\n"
    for cut in (9, 1, 30, 5, 40):  # one read ends right after a whole heartbeat marker
        connection.data_received(stream[:cut])
        stream = stream[cut:]
    connection.data_received(stream)
    assert (connection.count, connection.beats) == (2, 2)
    assert client.beats() == []  # beats() lists connected ones; this one was built by hand


def test_swarm_shares_split_evenly() -> None:
    assert shares(10, 4) == [3, 3, 2, 2]
    assert sum(shares(40_000, 4)) == 40_000


def test_percentile_interpolates() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0


def test_old_loop_skips_unfinished_and_breaks_at_the_cursor() -> None:
    newest_first: list[tuple[int, object]] = [
        (204, None),  # Stage 2 still running
        (203, 1.0),
        (202, 1.0),
        (201, 1.0),
        (200, 1.0),
    ]
    assert select_new(newest_first, cursor=202) == [203]
    assert select_new(newest_first, cursor=None) == [203, 202, 201, 200]


async def test_old_polling_loses_an_execution_completed_out_of_order(
    db_pool: asyncpg.Pool,
) -> None:
    """#200 completes after #201: the seed's loop never broadcasts #200 (the bug ours fixes)."""
    for execution_id in (200, 201):
        await db_pool.execute(
            """INSERT INTO executions (id, workflow_id, camera_id, status, started_at)
               VALUES ($1, 'wf', 'cam', 'success', now())""",
            execution_id,
        )
    baseline = OldPollingBaseline(db_pool, interval_s=1)
    complete = "UPDATE executions SET extracted_at = $2, processing_stage = 'stage2' WHERE id = $1"
    await db_pool.execute(complete, 201, datetime.now(UTC))
    assert await baseline.poll_once() == [201]
    await db_pool.execute(complete, 200, datetime.now(UTC))
    assert await baseline.poll_once() == []
    assert await baseline.poll_once() == []
    assert set(baseline.broadcast_at) == {201}


def run_quick(name: str, tmp_path: Path) -> dict[str, Any]:
    """`python -m bench NAME --quick`: the case runs end to end; its result from the JSON."""
    out = tmp_path / f"{name}.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", name, "--quick", "--out", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "### Targets" in done.stdout
    document = json.loads(out.read_text())
    assert set(document["benchmarks"]) == {name}
    result: dict[str, Any] = document["benchmarks"][name]["result"]
    return result


def peers() -> tuple[str, ...]:
    # nchan only where it is installed: the smoke test installs no system package.
    return ("gateway", "nchan") if nchan_installed() else ("gateway",)


def check_soak(result: dict[str, Any]) -> None:
    assert set(result["services"]) == {"gateway", "etl", "poller"}
    assert all(s["samples_after_warmup"] >= 2 for s in result["services"].values())
    assert result["clients_lost"] == 0


def check_failover(result: dict[str, Any]) -> None:
    assert result["resets"] == result["missing"] == result["duplicates"] == 0


def check_layers(result: dict[str, Any]) -> None:
    layers = {v["variant"] for v in result["variants"]}
    expected = {"protocol", "uvicorn", "starlette", "sse_starlette", "gateway"}
    expected |= {"gateway_via_uvicorn"}
    assert layers == expected | ({"nchan"} if nchan_installed() else set())


def check_workers(result: dict[str, Any]) -> None:
    assert result["workers_2"]["connected"] == result["connections"]


def check_capacity(result: dict[str, Any]) -> None:
    for server in peers():
        held = result[server]
        assert held["held_at_end"] == held["connections"]
        assert held["every_client_every_event"]
        assert held["heartbeat_misses"] == 0


def check_fanout(result: dict[str, Any]) -> None:
    for server in peers():
        (run,) = result[server]
        assert run["connected"] == run["connections"]
        assert run["delivered"] == run["connections"] * run["burst_events"]


def check_versus_old(result: dict[str, Any]) -> None:
    assert result["ours"]["missed"] == 0


def check_n8n_stage2(result: dict[str, Any]) -> None:
    assert result["n8n_failed"] == [0]
    assert result["n8n_per_process_per_s"] > 0


def check_latency(result: dict[str, Any]) -> None:
    assert result["rates"][0]["missing"] == 0


def check_stage2(result: dict[str, Any]) -> None:
    run = result["runs"][0]
    assert run["completed"] == run["executions"]


def check_ran(result: dict[str, Any]) -> None:
    assert result


# One test per case, each in its own `python -m bench NAME --quick`: xdist spreads them
# (the whole quick suite in one process was the suite's longest test by far).
CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "poller": check_ran,
    "stage2": check_stage2,
    "latency": check_latency,
    "batch": check_latency,
    "versus_old": check_versus_old,
    "fanout": check_fanout,
    "failover": check_failover,
    "stats": check_ran,
    "n8n_stage2": check_n8n_stage2,
    "triage_detail": check_ran,
    "layers": check_layers,
    "workers": check_workers,
    "capacity": check_capacity,
    "soak": check_soak,
}


def test_every_quick_benchmark_is_checked() -> None:
    assert set(CHECKS) == set(QUICK)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_quick_benchmark_runs(name: str, tmp_path: Path) -> None:
    """Every benchmark runs end to end at a tiny scale and writes its result."""
    CHECKS[name](run_quick(name, tmp_path))
