"""The benchmark harness works (tiny scale). Nothing here is timed: figures are bench's job."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

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


# The subprocess's own guard (600 s) rather than the suite's 300 s: every case runs in it.
@pytest.mark.timeout(600)
def test_quick_suite_runs_every_benchmark(tmp_path: Path) -> None:
    """`python -m bench --quick`: every benchmark runs end to end and the JSON is complete."""
    out = tmp_path / "quick.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    document = json.loads(out.read_text())
    benchmarks = document["benchmarks"]
    assert set(benchmarks) == {
        "poller",
        "stage2",
        "latency",
        "batch",
        "versus_old",
        "fanout",
        "failover",
        "stats",
        "n8n_stage2",
        "triage_detail",
        "layers",
        "workers",
        "capacity",
        "soak",
    }
    soak = benchmarks["soak"]["result"]
    assert set(soak["services"]) == {"gateway", "etl", "poller"}
    assert all(s["samples_after_warmup"] >= 2 for s in soak["services"].values())
    assert soak["clients_lost"] == 0
    failover = benchmarks["failover"]["result"]
    assert failover["resets"] == failover["missing"] == failover["duplicates"] == 0
    layers = {v["variant"] for v in benchmarks["layers"]["result"]["variants"]}
    expected_layers = {"protocol", "uvicorn", "starlette", "sse_starlette", "gateway"}
    expected_layers |= {"gateway_via_uvicorn"}
    assert layers == expected_layers | ({"nchan"} if nchan_installed() else set())
    workers = benchmarks["workers"]["result"]
    assert workers["workers_2"]["connected"] == workers["connections"]
    capacity = benchmarks["capacity"]["result"]
    for server in ("gateway", "nchan") if nchan_installed() else ("gateway",):
        held = capacity[server]
        assert held["held_at_end"] == held["connections"]
        assert held["every_client_every_event"]
        assert held["heartbeat_misses"] == 0
    fan = benchmarks["fanout"]["result"]
    # nchan only where it is installed: the smoke test installs no system package.
    for server in ("gateway", "nchan") if nchan_installed() else ("gateway",):
        (run,) = fan[server]
        assert run["connected"] == run["connections"]
        assert run["delivered"] == run["connections"] * run["burst_events"]
    assert benchmarks["versus_old"]["result"]["ours"]["missed"] == 0
    assert benchmarks["n8n_stage2"]["result"]["n8n_failed"] == [0]
    assert benchmarks["n8n_stage2"]["result"]["n8n_per_process_per_s"] > 0
    latency = benchmarks["latency"]["result"]["rates"][0]
    assert latency["missing"] == 0
    stage2 = benchmarks["stage2"]["result"]["runs"][0]
    assert stage2["completed"] == stage2["executions"]
    assert [t["target"] for t in document["targets"]]
    assert "Targets" in done.stdout
