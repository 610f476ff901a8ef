"""Bad input, across services: each gets a clear error, and nothing else is disturbed.

Unit-level cases already covered elsewhere are not repeated here (see
docs/RELIABILITY.md for the map). These tests run the real processes (or the
real gateway app) and check, in the same test, that good traffic still flows
end to end past the bad input.
"""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import pytest

from services.demo.generator import make_raw_execution
from services.etl.errors import MalformedExecution
from services.etl.stage1.ingest import ingest_execution
from shared.bus import Bus
from shared.contracts import (
    encode,
)
from shared.settings import GatewaySettings
from testkit.bad_inputs import OVERSIZE_LIMIT, STAGE1_CASES, STAGE2_CASES
from testkit.dead_letters import take_dead_letters
from testkit.factories import stage2_complete
from testkit.gateway import start_gateway
from testkit.pipeline import Pipelines
from testkit.sse import RECORDER_WAIT_S as WAIT_S
from testkit.sse import SseRecorder

TOKEN = "reliability-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _ids(recorder: SseRecorder, event: str) -> set[int]:
    found: set[int] = set()
    for received in recorder.of(event):
        if event == "execution:batch":
            found.update(e["id"] for e in received.data["executions"])
        else:
            found.add(received.data["execution_id"])
    return found


# -- raw executions -----------------------------------------------------------


async def test_bad_raw_executions_fail_clearly_while_good_ones_reach_the_dashboard(
    pipelines: Pipelines, db_pool: asyncpg.Pool
) -> None:
    image_dir = pipelines.image_dir
    pipeline = await pipelines.ready(ETL_MAX_IMAGE_BYTES=str(OVERSIZE_LIMIT))

    good_ids = [1, 2, 3]
    stage2_bad = {10 + n: case for n, case in enumerate(STAGE2_CASES)}
    invalid_json_id, no_raw_id = 30, 31
    stage1_bad = {40 + n: case for n, case in enumerate(STAGE1_CASES)}

    async with SseRecorder(pipeline.base_url) as dashboard:
        for execution_id in good_ids[:2]:
            await ingest_execution(db_pool, json.dumps(make_raw_execution(execution_id)))
        for execution_id, case in stage2_bad.items():
            await ingest_execution(db_pool, json.dumps(case.make(execution_id)))
        # The workflow may write rows itself: a raw payload that is not JSON at all,
        # and an execution whose raw data never arrived. Stage 2 must name both.
        # One transaction, as the workflow would: a worker must never see 30 without its raw row.
        async with db_pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """INSERT INTO executions (id, workflow_id, camera_id, status, started_at)
                   SELECT id, 'wf', 'cam', 'success', now() FROM unnest($1::bigint[]) AS id""",
                [invalid_json_id, no_raw_id],
            )
            await conn.execute(
                "INSERT INTO execution_raw (execution_id, payload) VALUES ($1, $2)",
                invalid_json_id,
                '{"execution_id": 30, "oops',
            )
        for execution_id, (name, make, message) in stage1_bad.items():
            with pytest.raises(MalformedExecution, match=message):
                await ingest_execution(db_pool, make(execution_id), source=f"reliability:{name}")
        await ingest_execution(db_pool, json.dumps(make_raw_execution(good_ids[2])))

        failing = {*stage2_bad, invalid_json_id, no_raw_id}
        await dashboard.wait_for(
            lambda d: (
                set(good_ids) <= _ids(d, "execution:batch")
                and set(good_ids) <= _ids(d, "etl:stage2:complete")
                and failing <= _ids(d, "etl:stage2:failed")
            ),
            "the good executions completed and every bad one failed",
        )

    failures = {e.data["execution_id"]: e.data for e in dashboard.of("etl:stage2:failed")}
    expected_errors = {i: case.error for i, case in stage2_bad.items()}
    expected_errors[invalid_json_id] = "malformed raw execution: (document): Invalid JSON"
    expected_errors[no_raw_id] = "no raw execution is stored for this execution"
    for execution_id, message in expected_errors.items():
        event = failures[execution_id]
        assert message in event["error"], (execution_id, event)
        assert event["retry_count"] == 1, event  # permanent: failed at once, no retries
    # Nothing but the good executions completed or was broadcast.
    assert _ids(dashboard, "etl:stage2:complete") == set(good_ids)
    assert _ids(dashboard, "execution:batch") == set(good_ids)
    assert set(failures) == failing

    rows = {
        r["id"]: r
        for r in await db_pool.fetch(
            "SELECT id, processing_stage, stage2_error, image_path FROM executions"
        )
    }
    assert set(rows) == {*good_ids, *failing}  # Stage 1 rejects never became executions
    for execution_id in failing:
        row = rows[execution_id]
        assert row["processing_stage"] == "failed"
        assert row["stage2_error"] == failures[execution_id]["error"]
        assert row["image_path"] is None
        assert not list(image_dir.rglob(f"{execution_id}.*"))  # no file written for it
    rejected = await db_pool.fetch("SELECT source, error FROM rejected_inputs ORDER BY id")
    assert [(r["source"], r["error"]) for r in rejected] == [
        (f"reliability:{name}", rejected[n]["error"])
        for n, (name, _, _) in enumerate(stage1_bad.values())
    ]
    for row, (_, _, message) in zip(rejected, stage1_bad.values(), strict=True):
        assert row["error"].startswith("malformed raw execution: ")
        assert message in row["error"]

    async with httpx.AsyncClient(base_url=pipeline.base_url, timeout=WAIT_S) as http:
        for execution_id in good_ids:
            shown = (await http.get(f"/api/executions/{execution_id}")).json()
            assert (shown["processing_stage"], shown["has_image"]) == ("stage2", True)
            thumbnail = await http.get(f"/api/executions/{execution_id}/thumbnail")
            assert thumbnail.status_code == 200
        shown = (await http.get(f"/api/executions/{invalid_json_id}")).json()
        assert shown["processing_stage"] == "failed"
        assert "Invalid JSON" in shown["stage2_error"]
        for execution_id in stage1_bad:
            assert (await http.get(f"/api/executions/{execution_id}")).status_code == 404
    for name, proc in pipeline.processes.items():
        assert proc.running, f"{name} died:\n{proc.output()[-3000:]}"


# -- bus messages ---------------------------------------------------------------


def _poison() -> list[tuple[str, bytes, object, str]]:
    """(routing key, body, schema_version header, what the gateway's log must say)."""
    valid = encode(stage2_complete(5))
    wrong_type = json.loads(valid)
    wrong_type["execution_id"] = "5"
    return [
        ("stage2.complete", b"{not json", 1, "invalid stage2.complete payload"),
        ("stage2.complete", b"\xff\xfe\x00 binary", 1, "invalid stage2.complete payload"),
        ("stage2.complete", valid, 2, "unsupported schema_version 2"),
        ("stage2.complete", valid, None, "unsupported schema_version None"),
        ("stage2.complete", valid, "1", "unsupported schema_version '1'"),
        ("stage2.complete", json.dumps(wrong_type).encode(), 1, "Input should be a valid integer"),
        ("stage2.failed", json.dumps({"execution_id": 1}).encode(), 1, "Field required"),
        (
            "executions.new",
            json.dumps({"executions": [], "timestamp": datetime.now(UTC).isoformat()}).encode(),
            1,
            "List should have at least 1 item",
        ),
        ("executions.new", b"[]", 1, "invalid executions.new payload"),
    ]


async def test_poison_bus_messages_are_dead_lettered_and_the_pipeline_keeps_flowing(
    pipelines: Pipelines, db_pool: asyncpg.Pool, bus: Bus, amqp_url: str
) -> None:
    pipeline = await pipelines.ready()
    poison = _poison()

    async with SseRecorder(pipeline.base_url) as dashboard:
        for routing_key, body, version, _ in poison:
            await bus.publish_raw(routing_key, body, schema_version=version)
        # A real execution right behind the poison: it must reach the client as usual.
        await ingest_execution(db_pool, json.dumps(make_raw_execution(1)))
        await dashboard.wait_for(
            lambda d: {1} <= _ids(d, "execution:batch") and {1} <= _ids(d, "etl:stage2:complete"),
            "the good execution's events",
        )
        dead = await take_dead_letters(amqp_url, bus.dead_letter_queue_name, len(poison))

    # No poison reached the client: only the good execution's two events.
    assert sorted(e.event for e in dashboard.data_events()) == [
        "etl:stage2:complete",
        "execution:batch",
    ]
    assert [m.body for m in dead] == [body for _, body, _, _ in poison]
    for message in dead:
        # Copied by the gateway's live stream reader (streams cannot dead-letter).
        assert message.headers["x-stream"] == f"{bus.exchange_name}.stream"
        assert isinstance(message.headers["x-stream-offset"], int)
        assert message.headers["x-death-reason"]
    gateway_log = pipeline["gateway"].output()
    assert gateway_log.count("invalid message in the event stream") == len(poison)
    for _, _, _, message in poison:
        assert message in gateway_log, message
    for name, proc in pipeline.processes.items():
        assert proc.running, f"{name} died:\n{proc.output()[-3000:]}"


# -- REST and SSE requests --------------------------------------------------------


def _cursor(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


# (path, query, status). 200s must return an empty page: the injection matched nothing.
HOSTILE_REQUESTS: list[tuple[str, dict[str, str], int]] = [
    ("/api/executions", {"limit": "1000000000000000000000000"}, 422),
    ("/api/executions", {"limit": str(2**63)}, 422),
    ("/api/executions", {"limit": "-1"}, 422),
    ("/api/executions", {"limit": "1e9"}, 422),
    ("/api/executions", {"camera": "' OR '1'='1"}, 200),
    ("/api/executions", {"camera": "x'; DROP TABLE executions; --"}, 200),
    ("/api/executions", {"camera": "x" * 201}, 422),
    ("/api/executions", {"alert_level": "high' OR 1=1 --"}, 422),
    ("/api/executions", {"processing_stage": "stage2; DELETE FROM executions"}, 422),
    ("/api/executions", {"has_smoke": "true OR 1=1"}, 422),
    ("/api/executions", {"since": "2025-01-01'; DROP TABLE executions; --"}, 422),
    ("/api/executions", {"cursor": _cursor({"before_id": "1 OR 1=1"})}, 422),
    ("/api/executions", {"cursor": _cursor({"before_id": 2**70})}, 422),
    ("/api/executions", {"cursor": _cursor({"before_id": 1.5})}, 422),
    ("/api/executions", {"cursor": _cursor([1])}, 422),
    ("/api/executions/1 OR 1=1", {}, 422),
    ("/api/executions/1;DROP TABLE executions", {}, 422),
    ("/api/executions/99999999999999999999999", {}, 422),
    ("/api/executions/1e3", {}, 422),
    ("/api/executions/123456", {}, 404),
    ("/api/executions/123456/image", {}, 404),
]

BOGUS_LAST_EVENT_IDS = [
    "-",
    "--5",
    "x" * 4000,
    "9" * 4400 + "-0000abcd",  # too many digits for int(): must not become a server error
    "999999999999-0000abcd",  # a stream position that never existed
    "0-0000abcd",  # a position this stream never held with that fingerprint
    "-3-0000abcd",
    "1.5-0000abcd",
    "'; DROP TABLE executions; --",
]


async def test_hostile_requests_get_clear_errors_and_leave_data_and_streams_untouched(
    database_url: str,
    amqp_url: str,
    exchange_name: str,
    db_pool: asyncpg.Pool,
    bus: Bus,
    tmp_path: Path,
) -> None:
    for execution_id in (1, 2, 3):
        await ingest_execution(db_pool, json.dumps(make_raw_execution(execution_id)))
    gateway = await start_gateway(
        GatewaySettings(
            database_url=database_url,
            amqp_url=amqp_url,
            exchange_name=exchange_name,
            image_dir=tmp_path / "images",
            gateway_token=TOKEN,
            heartbeat_interval_s=60.0,
            # This test sends dozens of wrong tokens on purpose; the failed-check rate
            # limit (429 after 20 a minute) is tested in tests/gateway/test_auth.py.
            auth_failures_per_minute=10_000,
        )
    )
    try:
        async with (
            SseRecorder(gateway.base_url, headers=AUTH) as watcher,
            httpx.AsyncClient(base_url=gateway.base_url, timeout=WAIT_S) as http,
        ):
            for path, params, status in HOSTILE_REQUESTS:
                # Without a token, or with a wrong one, the answer is 401 before anything else.
                for headers in ({}, {"Authorization": "Bearer wrong"}):
                    denied = await http.get(path, params=params, headers=headers)
                    assert denied.status_code == 401, (path, params, headers, denied.text)
                response = await http.get(path, params=params, headers=AUTH)
                assert response.status_code == status, (path, params, response.text)
                if status == 200:
                    assert response.json()["items"] == [], (path, params)
                elif status == 422:
                    errors = response.json()["detail"]
                    assert errors and all(error["msg"] for error in errors), errors
                else:
                    assert response.json()["detail"].startswith("execution 123456 "), response.text
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                assert (await http.get("/api/events", headers=headers)).status_code == 401

            # Bogus Last-Event-IDs, as the header EventSource sends and as the query
            # parameter a recreated EventSource uses: a reset carrying the head id, then
            # live events. An empty one is no id at all: a fresh connection.
            resumers: list[tuple[str, SseRecorder]] = []
            for bogus in BOGUS_LAST_EVENT_IDS:
                last_event_id = bogus
                for how in ("header", "query"):
                    resumer = SseRecorder(
                        gateway.base_url,
                        headers={**AUTH, "Last-Event-ID": last_event_id}
                        if how == "header"
                        else AUTH,
                        params={"last_event_id": last_event_id} if how == "query" else None,
                    )
                    resumers.append((f"{how} {last_event_id[:40]!r}", await resumer.__aenter__()))
            fresh = await SseRecorder(
                gateway.base_url, headers={**AUTH, "Last-Event-ID": ""}
            ).__aenter__()
            streams = [watcher, fresh, *(r for _, r in resumers)]
            try:
                # No 401 attempt ever registered as a client. (Ids of positions this
                # gateway has not read are waited for briefly, then get their reset.)
                for _ in range(200):
                    if gateway.hub.client_count >= len(streams):
                        break
                    await asyncio.sleep(0.05)
                assert gateway.hub.client_count == len(streams)
                message = stage2_complete(2)
                await bus.publish(message)
                for recorder in streams:
                    await recorder.wait_for(
                        lambda r: len(r.of("etl:stage2:complete")) == 1, "the live event"
                    )
                for what, resumer in resumers:
                    events = [e.event for e in resumer.data_events()]
                    assert events == ["reset", "etl:stage2:complete"], (what, resumer.events)
                    reset = resumer.of("reset")[0]
                    # The head when it came: none yet, so an empty id (a fresh start).
                    assert reset.id == "", what
                for recorder in (watcher, fresh):
                    assert [e.event for e in recorder.data_events()] == ["etl:stage2:complete"]
                    assert recorder.of("etl:stage2:complete")[0].data == json.loads(encode(message))
                assert fresh.of("connection")[0].data["resumed_from"] is None
            finally:
                for recorder in streams[1:]:
                    await recorder.__aexit__(None, None, None)

        # The table is intact and the API still answers normally.
        assert await db_pool.fetchval("SELECT to_regclass('executions') IS NOT NULL")
        assert await db_pool.fetchval("SELECT count(*) FROM executions") == 3
        async with httpx.AsyncClient(base_url=gateway.base_url, headers=AUTH) as http:
            page = (await http.get("/api/executions")).json()
            assert [e["id"] for e in page["items"]] == [3, 2, 1]
    finally:
        await gateway.stop()
