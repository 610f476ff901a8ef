"""Operator triage API against a real database and broker: false-positive marks,
acknowledgements, audit trail, the `execution.updated` event through the outbox,
the camera sequence, open alerts and detection boxes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from services.etl.outbox.relay import OutboxRelay, RelayConfig
from services.gateway import queries
from shared.bus import Bus
from shared.contracts import SCHEMA_VERSION, ExecutionUpdated, RoutingKey, decode
from testkit.explain import plan_nodes
from testkit.gateway import GatewayFactory
from testkit.rows import T0, completed, insert_execution
from testkit.sse import SseConnector


@pytest.fixture
async def seeded(db_pool: asyncpg.Pool) -> None:
    for execution_id in range(1, 7):
        level = {2: "high", 5: "critical"}.get(execution_id, "none")
        await insert_execution(db_pool, execution_id, **completed(alert_level=level))


async def outbox_events(pool: asyncpg.Pool) -> list[ExecutionUpdated]:
    rows = await pool.fetch(
        "SELECT routing_key, payload FROM outbox WHERE routing_key = $1 ORDER BY id",
        RoutingKey.EXECUTION_UPDATED.value,
    )
    events = [decode(r["routing_key"], r["payload"].encode(), SCHEMA_VERSION) for r in rows]
    return [e for e in events if isinstance(e, ExecutionUpdated)]


async def audit(pool: asyncpg.Pool) -> list[tuple[int, str, str, str | None]]:
    rows = await pool.fetch(
        "SELECT execution_id, action, actor, reason FROM execution_audit ORDER BY id"
    )
    return [(r["execution_id"], r["action"], r["actor"], r["reason"]) for r in rows]


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.usefixtures("seeded")
async def test_mark_and_unmark_one_keeps_who_when_why_and_an_audit_trail(
    http: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    body = ok(
        await http.post(
            "/api/executions/3/false-positive", json={"reason": "  fog bank  ", "actor": "ana"}
        )
    )
    assert body["false_positive"] is True
    assert body["false_positive_reason"] == "fog bank"
    assert body["false_positive_by"] == "ana"
    assert body["false_positive_at"] is not None
    assert body["triage_revision"] == 1

    detail = ok(await http.get("/api/executions/3"))
    assert detail["false_positive"] is True and detail["false_positive_by"] == "ana"

    body = ok(
        await http.post(
            "/api/executions/3/false-positive", json={"false_positive": False, "actor": "bo"}
        )
    )
    assert body["false_positive"] is False
    assert body["false_positive_reason"] is None and body["false_positive_by"] is None
    assert body["triage_revision"] == 2

    assert await audit(db_pool) == [
        (3, "mark_false_positive", "ana", "fog bank"),
        (3, "unmark_false_positive", "bo", None),
    ]
    trail = ok(await http.get("/api/executions/3/audit"))
    assert [e["action"] for e in trail["entries"]] == [
        "unmark_false_positive",
        "mark_false_positive",
    ]
    events = await outbox_events(db_pool)
    assert [(e.action, e.actor, [s.execution_id for s in e.executions]) for e in events] == [
        ("mark_false_positive", "ana", [3]),
        ("unmark_false_positive", "bo", [3]),
    ]
    assert events[1].executions[0].triage_revision == 2


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    ("path", "payload", "status"),
    [
        ("/api/executions/3/false-positive", {}, 422),  # nobody signed in and no actor
        ("/api/executions/3/false-positive", {"actor": "   "}, 422),
        ("/api/executions/3/false-positive", {"actor": "a", "reason": "x\x00y"}, 422),
        ("/api/executions/3/false-positive", {"actor": "a", "colour": "red"}, 422),
        ("/api/executions/99/false-positive", {"actor": "a"}, 404),
        ("/api/executions/0/false-positive", {"actor": "a"}, 422),
        ("/api/executions/bulk/false-positive", {"actor": "a", "execution_ids": []}, 422),
        (
            "/api/executions/bulk/false-positive",
            {"actor": "a", "execution_ids": list(range(1, 502))},
            422,
        ),
        ("/api/executions/99/acknowledge", {"actor": "a"}, 404),
        ("/api/executions/2/acknowledge", {}, 422),
    ],
)
async def test_bad_requests_get_a_clear_error_and_change_nothing(
    http: httpx.AsyncClient,
    db_pool: asyncpg.Pool,
    path: str,
    payload: dict[str, Any],
    status: int,
) -> None:
    response = await http.post(path, json=payload)
    assert response.status_code == status, response.text
    assert response.json()["detail"]
    assert await audit(db_pool) == []
    assert await outbox_events(db_pool) == []
    assert await db_pool.fetchval("SELECT count(*) FROM executions WHERE triage_revision > 0") == 0


@pytest.mark.usefixtures("seeded")
async def test_bulk_marks_known_ids_reports_unknown_ones_and_writes_one_event(
    http: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    body = ok(
        await http.post(
            "/api/executions/bulk/false-positive",
            json={"execution_ids": [4, 1, 404, 4], "reason": "lens glare", "actor": "ana"},
        )
    )
    assert [s["execution_id"] for s in body["updated"]] == [1, 4]
    assert body["not_found"] == [404]
    assert await audit(db_pool) == [
        (1, "mark_false_positive", "ana", "lens glare"),
        (4, "mark_false_positive", "ana", "lens glare"),
    ]
    [event] = await outbox_events(db_pool)
    assert [s.execution_id for s in event.executions] == [1, 4]

    def listed(params: dict[str, str]) -> Any:
        return http.get("/api/executions", params=params)

    assert [i["id"] for i in ok(await listed({"false_positive": "true"}))["items"]] == [4, 1]
    assert [i["id"] for i in ok(await listed({"false_positive": "false"}))["items"]] == [
        6,
        5,
        3,
        2,
    ]


async def test_bulk_of_500_is_accepted(http: httpx.AsyncClient, db_pool: asyncpg.Pool) -> None:
    await db_pool.executemany(
        """INSERT INTO executions (id, workflow_id, camera_id, status, started_at)
           VALUES ($1, 'wf', 'cam', 'success', $2)""",
        [(i, T0 + timedelta(seconds=i)) for i in range(1, 501)],
    )
    body = ok(
        await http.post(
            "/api/executions/bulk/false-positive",
            json={"execution_ids": list(range(1, 501)), "actor": "ana"},
        )
    )
    assert len(body["updated"]) == 500
    assert await db_pool.fetchval("SELECT count(*) FROM executions WHERE false_positive") == 500


@pytest.mark.usefixtures("seeded")
async def test_concurrent_bulk_requests_in_opposite_orders_do_not_deadlock(
    http: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    forward = list(range(1, 7))
    results = await asyncio.gather(
        *(
            http.post(
                "/api/executions/bulk/false-positive",
                json={"execution_ids": forward if n % 2 else forward[::-1], "actor": f"op{n}"},
            )
            for n in range(6)
        )
    )
    assert all(r.status_code == 200 for r in results)
    revisions = await db_pool.fetch("SELECT triage_revision FROM executions")
    assert {r["triage_revision"] for r in revisions} == {6}


@pytest.mark.usefixtures("seeded")
async def test_acknowledgement_is_kept_once_and_open_alerts_drop_it(
    http: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    assert [i["id"] for i in ok(await http.get("/api/alerts"))["items"]] == [5, 2]
    first = ok(await http.post("/api/executions/5/acknowledge", json={"actor": "ana"}))
    assert first["updated"][0]["acknowledged_by"] == "ana"
    again = ok(await http.post("/api/executions/5/acknowledge", json={"actor": "bo"}))
    assert again["updated"] == [] and again["unchanged"] == [5]
    assert await db_pool.fetchval("SELECT acknowledged_by FROM executions WHERE id = 5") == "ana"
    assert [i["id"] for i in ok(await http.get("/api/alerts"))["items"]] == [2]
    # A false positive is no open alert either.
    ok(await http.post("/api/executions/2/false-positive", json={"actor": "ana"}))
    assert ok(await http.get("/api/alerts"))["items"] == []
    assert [e.action for e in await outbox_events(db_pool)] == [
        "acknowledge",
        "mark_false_positive",
    ]
    since = (T0 + timedelta(minutes=3)).isoformat()
    await db_pool.execute("UPDATE executions SET alert_level = 'high' WHERE id = 1")
    assert ok(await http.get("/api/alerts", params={"since": since}))["items"] == []


async def walk(http: httpx.AsyncClient, anchor: int | None, direction: str) -> list[int]:
    """Every frame from `anchor` on in `direction`, two per page (keyset pagination)."""
    walked: list[int] = []
    while anchor is not None:
        page = ok(
            await http.get(
                f"/api/executions/{anchor}/sequence", params={"direction": direction, "limit": 2}
            )
        )
        walked += [i["id"] for i in page["items"]]
        anchor = page["next_anchor"]
    return walked


async def test_sequence_walks_one_camera_in_capture_order_keyset_paginated(
    http: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    # cam-a: frames 1-3 arrived live; 4-6 were taken during a network outage (between
    # frames 1 and 2) and uploaded afterwards, newest first, so their runs started last.
    # Frame 7 has no capture time (a source without it): its run start places it.
    # Frames 8 and 9 were taken in the same millisecond: id breaks the tie.
    def minute(m: float) -> Any:
        return T0 + timedelta(minutes=m)

    frames = {  # id: (captured_at, started_at)
        1: (minute(0), minute(0.1)),
        2: (minute(5), minute(5.1)),
        3: (minute(6), minute(6.1)),
        4: (minute(4), minute(7)),
        5: (minute(3), minute(7.2)),
        6: (minute(2), minute(7.4)),
        7: (None, minute(5.5)),
        8: (minute(6.5), minute(8)),
        9: (minute(6.5), minute(7.9)),
    }
    for execution_id, (captured, started) in frames.items():
        await insert_execution(
            db_pool, execution_id, camera_id="cam-a", captured_at=captured, started_at=started
        )
    await insert_execution(db_pool, 10, camera_id="cam-b", captured_at=minute(3))
    in_capture_order = [1, 6, 5, 4, 2, 7, 3, 8, 9]

    assert await walk(http, 1, "next") == in_capture_order[1:]
    assert await walk(http, 9, "previous") == in_capture_order[-2::-1]
    assert await walk(http, 5, "next") == in_capture_order[3:]  # from inside the backlog

    back = ok(await http.get("/api/executions/2/sequence", params={"direction": "previous"}))
    assert [i["id"] for i in back["items"]] == [4, 5, 6, 1]
    assert back["items"][0]["captured_at"] == "2025-08-01T12:04:00Z"
    assert back["next_anchor"] is None
    assert (await http.get("/api/executions/99/sequence")).status_code == 404
    assert (
        await http.get("/api/executions/1/sequence", params={"direction": "sideways"})
    ).status_code == 422


@pytest.mark.parametrize("direction", ["next", "previous"])
async def test_a_sequence_step_reads_limit_index_entries_not_the_cameras_frames(
    db_pool: asyncpg.Pool, direction: str
) -> None:
    """The plan of the very statement the route runs, on 20 000 frames of 4 cameras.

    A step must stop after `limit` + 1 index entries, however many frames the camera has
    on that side of the anchor (the anchor sits in the middle: 2 500 frames each side).
    """
    await db_pool.execute(
        """INSERT INTO executions (id, workflow_id, camera_id, status, started_at, captured_at)
           SELECT i, 'wf', 'cam-' || (i % 4), 'success', $1::timestamptz + i * interval '1 second',
                  CASE WHEN i % 10 <> 0 THEN $1 + i * interval '1 second' - interval '700 ms' END
           FROM generate_series(1, 20000) AS i""",
        T0,
    )
    await db_pool.execute("ANALYZE executions")
    limit = 21
    async with db_pool.acquire() as conn:
        nodes = await plan_nodes(conn, queries.SEQUENCE_SQL[direction], 10_001, limit)
    scans = [n for n in nodes if n.get("Index Name") == "executions_camera_capture_idx"]
    assert len(scans) == 1, nodes
    assert scans[0]["Actual Rows"] == limit, scans[0]
    assert not [n for n in nodes if n["Node Type"] == "Sort"], nodes


@pytest.fixture
async def relay(db_pool: asyncpg.Pool, bus: Bus) -> AsyncIterator[None]:
    """The ETL's outbox relay, running as in the worker process."""
    stop = asyncio.Event()
    relay = OutboxRelay(db_pool, bus, RelayConfig(poll_interval_s=0.05))
    task = asyncio.create_task(relay.run(stop))
    yield
    stop.set()
    await asyncio.wait_for(task, 10)


@pytest.mark.usefixtures("seeded", "relay")
async def test_a_mark_reaches_sse_clients_through_the_outbox_and_replays_on_resume(
    http: httpx.AsyncClient, sse: SseConnector
) -> None:
    watcher = await sse.connect()
    ok(await http.post("/api/executions/2/false-positive", json={"actor": "ana", "reason": "dust"}))
    event, data = await watcher.next_json()
    assert event.event == "execution:updated"
    assert data["action"] == "mark_false_positive" and data["reason"] == "dust"
    assert data["executions"][0]["execution_id"] == 2
    assert data["executions"][0]["false_positive"] is True

    # A client that was away since before the mark gets it replayed on resume.
    ok(await http.post("/api/executions/2/acknowledge", json={"actor": "bo"}))
    _, acked = await watcher.next_json()
    assert acked["action"] == "acknowledge"
    resumed = await sse.connect(last_event_id=event.id)
    replayed, replayed_data = await resumed.next_json()
    assert replayed.event == "execution:updated" and replayed_data == acked


async def test_with_the_shared_token_the_typed_name_is_recorded_else_the_token_holder(
    gateway_factory: GatewayFactory, db_pool: asyncpg.Pool
) -> None:
    await insert_execution(db_pool, 1, **completed())
    gateway = await gateway_factory(gateway_token="s3cret")
    async with httpx.AsyncClient(base_url=gateway.base_url) as client:
        path = "/api/executions/1/false-positive"
        assert (await client.post(path, json={"actor": "ana"})).status_code == 401
        auth = {"Authorization": "Bearer s3cret"}
        ok(await client.post(path, json={"actor": "ana"}, headers=auth))
        ok(await client.post(path, json={"false_positive": False}, headers=auth))
    assert [(a[2], a[1]) for a in await audit(db_pool)] == [
        ("ana", "mark_false_positive"),
        ("shared-token", "unmark_false_positive"),
    ]
