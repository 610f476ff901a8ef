"""Statistics: exact against the executions table, whatever order Stage 2 finishes in.

Every answer is checked against a ground truth computed in Python from the rows of
`executions` themselves (not from the roll-ups), after every step of a shuffled run of
completions, failures, retries and compactions, and for ranges that cut hours in two.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest

from services.gateway import queries, stats
from services.gateway.queries import ExecutionFilter
from testkit.explain import plan_nodes
from testkit.rows import completed, insert_execution

T0 = datetime(2025, 8, 1, 0, 0, tzinfo=UTC)
CAMERAS = {"cam-a": "Cerro Azul", "cam-b": "Cerro Azul", "cam-c": None, "cam-d": "Villa"}
LEVELS = ("none", "low", "medium", "high", "critical")


async def all_rows(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    return [dict(row.items()) for row in await pool.fetch("SELECT * FROM executions")]


def matches(row: dict[str, Any], f: ExecutionFilter) -> bool:
    return (
        (f.has_smoke is None or row["has_smoke"] == f.has_smoke)
        and (not f.alert_levels or row["alert_level"] in f.alert_levels)
        and (f.camera is None or row["camera_id"] == f.camera)
        and (f.location is None or row["location"] == f.location)
        and (f.since is None or row["started_at"] >= f.since)
        and (f.until is None or row["started_at"] < f.until)
        and (f.processing_stage is None or row["processing_stage"] == f.processing_stage)
        and (f.false_positive is None or row["false_positive"] == f.false_positive)
    )


def truth(rows: list[dict[str, Any]]) -> dict[str, Any]:
    confidences = [r["confidence"] for r in rows if r["confidence"] is not None]
    done = [r for r in rows if r["processing_stage"] == "stage2"]
    return {
        "executions": len(rows),
        "smoke": sum(1 for r in rows if r["has_smoke"]),
        "false_positives": sum(1 for r in rows if r["false_positive"]),
        "detections": sum(r["detection_count"] or 0 for r in rows),
        "average_confidence": sum(confidences) / len(confidences) if confidences else None,
        "by_level": {level: sum(1 for r in done if r["alert_level"] == level) for level in LEVELS},
        "pending": sum(1 for r in rows if r["processing_stage"] == "stage1"),
        "failed": sum(1 for r in rows if r["processing_stage"] == "failed"),
    }


def as_dict(totals: stats.Totals) -> dict[str, Any]:
    return {
        "executions": totals.executions,
        "smoke": totals.smoke,
        "false_positives": totals.false_positives,
        "detections": totals.detections,
        "average_confidence": totals.average_confidence,
        "by_level": totals.by_level,
        "pending": totals.pending,
        "failed": totals.failed,
    }


def same(got: dict[str, Any], want: dict[str, Any]) -> None:
    got, want = dict(got), dict(want)
    g, w = got.pop("average_confidence"), want.pop("average_confidence")
    assert got == want
    assert (g is None and w is None) or (g is not None and w is not None and abs(g - w) < 1e-6)


# Ranges that cut hours in two, lie inside one hour, are open-ended, or cover everything.
FILTERS = [
    ExecutionFilter(),
    ExecutionFilter(since=T0 + timedelta(minutes=95), until=T0 + timedelta(hours=7, minutes=5)),
    ExecutionFilter(since=T0 + timedelta(minutes=20), until=T0 + timedelta(minutes=50)),
    ExecutionFilter(since=T0 + timedelta(minutes=50), until=T0 + timedelta(minutes=70)),
    ExecutionFilter(since=T0 + timedelta(hours=3)),
    ExecutionFilter(
        since=T0 + timedelta(hours=30, minutes=7), until=T0 + timedelta(days=3, hours=2)
    ),
    ExecutionFilter(since=T0 + timedelta(days=1), until=T0 + timedelta(days=2)),
    ExecutionFilter(until=T0 + timedelta(days=2, minutes=30)),
    ExecutionFilter(until=T0 + timedelta(hours=5, seconds=1)),
    ExecutionFilter(alert_levels=("high", "critical")),
    ExecutionFilter(camera="cam-c", has_smoke=True),
    ExecutionFilter(location="Cerro Azul", since=T0 + timedelta(minutes=30)),
    ExecutionFilter(processing_stage="failed"),
    ExecutionFilter(false_positive=True, since=T0 + timedelta(minutes=10)),
    ExecutionFilter(false_positive=False, alert_levels=("low",)),
]


async def check_everything(pool: asyncpg.Pool) -> None:
    rows = await all_rows(pool)
    for f in FILTERS:
        selected = [r for r in rows if matches(r, f)]
        assert await stats.count(pool, f) == len(selected), f
        same(as_dict(await stats.summary(pool, f)), truth(selected))
        series = await stats.timeseries(pool, f, "hour", "UTC")
        hours = Counter(r["started_at"].replace(minute=0, second=0) for r in selected)
        assert {b.start: b.totals.executions for b in series} == dict(hours), f
        daily = await stats.timeseries(pool, f, "day", "UTC")  # the daily tier
        days = Counter(r["started_at"].replace(hour=0, minute=0, second=0) for r in selected)
        assert {b.start: b.totals.executions for b in daily} == dict(days), f
        ranked = await stats.ranking(pool, f, "camera", "smoke", 10)
        smoke = Counter(r["camera_id"] for r in selected if r["has_smoke"])
        assert {r.key: r.totals.smoke for r in ranked} == dict(smoke), f
        ranked_fp = await stats.ranking(pool, f, "location", "false_positives", 10)
        fps = Counter(r["location"] for r in selected if r["false_positive"])
        assert {r.key: r.totals.false_positives for r in ranked_fp} == dict(fps), f


async def test_statistics_stay_exact_under_shuffled_completions_and_compactions(
    db_pool: asyncpg.Pool,
) -> None:
    rng = random.Random(15)
    ids = list(range(1, 121))
    for execution_id in ids:
        camera = rng.choice(list(CAMERAS))
        # Over four days: ranges use the daily, hourly and live tiers.
        started = T0 + timedelta(minutes=rng.randrange(0, 4 * 24 * 60), seconds=rng.randrange(60))
        await insert_execution(
            db_pool, execution_id, camera_id=camera, location=CAMERAS[camera], started_at=started
        )
    await check_everything(db_pool)  # all pending, all still in deltas

    steps = ids * 2  # each execution is touched twice: a failure may come before success
    rng.shuffle(steps)
    for step, execution_id in enumerate(steps):
        if rng.random() < 0.15:  # an operator marks or unmarks a false positive
            await db_pool.execute(
                "UPDATE executions SET false_positive = NOT false_positive WHERE id = $1",
                execution_id,
            )
        elif rng.random() < 0.3:
            await db_pool.execute(
                "UPDATE executions SET processing_stage = 'failed', retry_count = retry_count + 1"
                " WHERE id = $1 AND processing_stage <> 'stage2'",
                execution_id,
            )
        else:
            level = rng.choice(LEVELS)
            fields = completed(
                alert_level=level,
                has_smoke=level != "none",
                detection_count=rng.randrange(0, 6),
                confidence=round(rng.random(), 3),
            )
            sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(fields, start=2))
            await db_pool.execute(
                f"UPDATE executions SET {sets} WHERE id = $1", execution_id, *fields.values()
            )
        if rng.random() < 0.2:
            await stats.compact(db_pool)
        if step % 40 == 0:
            await check_everything(db_pool)
    await check_everything(db_pool)
    await stats.compact(db_pool)
    assert await db_pool.fetchval("SELECT count(*) FROM execution_stats_delta") == 0
    await check_everything(db_pool)

    # Deleting executions takes them out of the figures too.
    await db_pool.execute("DELETE FROM executions WHERE id % 3 = 0")
    await check_everything(db_pool)
    await stats.compact(db_pool)
    await check_everything(db_pool)
    # Emptied groups leave every tier.
    for table in ("hourly", "daily", "hourly_global"):
        sql = f"SELECT count(*) FROM execution_stats_{table} WHERE executions = 0"
        assert await db_pool.fetchval(sql) == 0


async def test_a_change_in_flight_during_compaction_is_counted_once(db_pool: asyncpg.Pool) -> None:
    await insert_execution(db_pool, 1, started_at=T0)
    await stats.compact(db_pool)
    async with db_pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE executions SET processing_stage = 'stage2', alert_level = 'high',"
            " has_smoke = true WHERE id = 1"
        )
        # Not committed yet: the compactor cannot see (or lose) this delta.
        await stats.compact(db_pool)
        assert (await stats.summary(db_pool, ExecutionFilter())).pending == 1
    totals = await stats.summary(db_pool, ExecutionFilter())
    assert (totals.pending, totals.by_level["high"], totals.executions) == (0, 1, 1)
    await stats.compact(db_pool)
    assert (await stats.summary(db_pool, ExecutionFilter())).by_level["high"] == 1


async def test_days_follow_the_requested_time_zone(db_pool: asyncpg.Pool) -> None:
    # 02:30 UTC is the evening before in Argentina (UTC-3).
    await insert_execution(db_pool, 1, started_at=datetime(2025, 8, 2, 2, 30, tzinfo=UTC))
    await insert_execution(db_pool, 2, started_at=datetime(2025, 8, 2, 4, 30, tzinfo=UTC))
    utc_days = await stats.timeseries(db_pool, ExecutionFilter(), "day", "UTC")
    assert [(b.start, b.totals.executions) for b in utc_days] == [
        (datetime(2025, 8, 2, tzinfo=UTC), 2)
    ]
    local = ZoneInfo("America/Argentina/Cordoba")
    local_days = await stats.timeseries(db_pool, ExecutionFilter(), "day", str(local))
    assert [(b.start, b.totals.executions) for b in local_days] == [
        (datetime(2025, 8, 1, tzinfo=local), 1),
        (datetime(2025, 8, 2, tzinfo=local), 1),
    ]


@pytest.fixture
async def seeded(db_pool: asyncpg.Pool) -> None:
    levels = ["critical", "high", "high", "low", "none", "none"]
    for i, level in enumerate(levels, start=1):
        camera = "cam-a" if i <= 3 else "cam-b"
        await insert_execution(
            db_pool,
            i,
            camera_id=camera,
            location="Cerro Azul" if camera == "cam-a" else "Villa",
            started_at=T0 + timedelta(hours=i),
            **completed(alert_level=level, has_smoke=level != "none", confidence=0.5),
        )


@pytest.mark.usefixtures("seeded")
async def test_stats_api_takes_the_list_filters(http: httpx.AsyncClient) -> None:
    count = await http.get("/api/stats/count", params={"alert_level": ["high", "critical"]})
    assert count.json() == {"count": 3, "exact": True}

    summary = (await http.get("/api/stats/summary", params={"location": "Villa"})).json()
    assert summary["executions"] == 3
    assert summary["by_level"] == {"none": 2, "low": 1, "medium": 0, "high": 0, "critical": 0}
    assert summary["average_confidence"] == pytest.approx(0.5)

    series = await http.get(
        "/api/stats/timeseries",
        params={"interval": "day", "tz": "UTC", "since": T0.isoformat(), "has_smoke": "true"},
    )
    assert series.status_code == 200, series.text
    assert [b["totals"]["smoke"] for b in series.json()["buckets"]] == [4]

    ranking = (await http.get("/api/stats/ranking", params={"by": "location"})).json()
    assert [(i["key"], i["totals"]["smoke"]) for i in ranking["items"]] == [
        ("Cerro Azul", 3),
        ("Villa", 1),
    ]


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/stats/timeseries", {"tz": "Mars/Olympus"}, "tz"),
        ("/api/stats/timeseries", {"interval": "fortnight"}, "interval"),
        ("/api/stats/ranking", {"by": "colour"}, "by"),
        ("/api/stats/ranking", {"limit": "1000"}, "limit"),
        ("/api/stats/count", {"since": "2025-08-02T00:00Z", "until": "2025-08-01T00:00Z"}, "until"),
        ("/api/stats/summary", {"alert_level": "severe"}, "alert_level"),
    ],
)
async def test_bad_stats_parameters_are_422_naming_the_parameter(
    http: httpx.AsyncClient, path: str, params: dict[str, str], field: str
) -> None:
    response = await http.get(path, params=params)
    assert response.status_code == 422, response.text
    assert any(e["loc"][:2] == ["query", field] for e in response.json()["detail"])


async def test_a_camera_filter_reads_only_that_cameras_rows_of_the_partial_hours(
    db_pool: asyncpg.Pool,
) -> None:
    """The partial hours at a range's ends come from `executions`: with a camera filter,
    executions_camera_time_idx (migration 0020) bounds that read to the camera's rows.

    20 000 executions of 4 cameras, one a second; the range cuts two hours in two.
    """
    await db_pool.execute(
        """INSERT INTO executions (id, workflow_id, camera_id, status, started_at)
           SELECT i, 'wf', 'cam-' || (i % 4), 'success', $1::timestamptz + i * interval '1 s'
           FROM generate_series(1, 20000) AS i""",
        T0,
    )
    await db_pool.execute("ANALYZE executions")
    since, until = T0 + timedelta(minutes=17), T0 + timedelta(hours=5, minutes=7)
    args: list[Any] = []
    facts = queries.facts_sql(ExecutionFilter(camera="cam-1", since=since, until=until), args)
    async with db_pool.acquire() as conn:
        nodes = await plan_nodes(conn, queries.stats_count_sql(facts), *args)
    reads = [n for n in nodes if n.get("Relation Name") == "executions"]
    assert len(reads) == 2, nodes  # the two partial hours
    # Each through the index with the camera in its condition (index or bitmap scan).
    indexed = [n for n in nodes if n.get("Index Name") == "executions_camera_time_idx"]
    assert len(indexed) == 2, nodes
    assert all("camera_id" in n["Index Cond"] for n in indexed), indexed
