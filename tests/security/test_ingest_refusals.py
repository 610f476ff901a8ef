"""Issue 19 #5: values that pass JSON parsing but PostgreSQL cannot store are rejections.

Before: a NUL in `metadata.device_id`, `started_at` in year 0 once in UTC, or an
`execution_id` beyond BIGINT made `python -m services.etl ingest` die with an
asyncpg traceback: exit 1, nothing in `rejected_inputs`, and the files after it
in the same command never ingested.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg

from services.demo.generator import make_raw_execution
from testkit.etl import run_etl_cli


def _with(number: int, **changes: Any) -> dict[str, Any]:
    raw = make_raw_execution(number)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        target = raw
        for name in parents:
            target = target[name]
        target[last] = value
    return raw


async def test_values_postgresql_cannot_store_are_rejected_and_the_rest_ingested(
    tmp_path: Path, service_env: dict[str, str], db_pool: asyncpg.Pool
) -> None:
    # A refusal no validation foresees: this test's own database refuses one value.
    await db_pool.execute(
        "ALTER TABLE executions ADD CONSTRAINT hostile_test CHECK (workflow_id <> 'refused')"
    )
    inputs = {
        "nul.json": _with(21, metadata__device_id="cam\u0000nul"),
        "year0.json": _with(22, started_at="0001-01-01T00:00:00+05:00"),
        "stopped-year0.json": _with(23, stopped_at="0001-01-01T00:00:00+23:59"),
        "bigint.json": _with(24, execution_id=9223372036854775808),
        "refused.json": _with(25, workflow_id="refused"),
        "good.json": _with(26),
    }
    paths = []
    for name, raw in inputs.items():
        path = tmp_path / name
        path.write_text(json.dumps(raw))
        paths.append(path)

    result = run_etl_cli(["ingest", *map(str, paths)], service_env)

    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1  # some files were rejected; each is reported
    for name in list(inputs)[:-1]:
        assert name in result.stderr + result.stdout
    rejected = await db_pool.fetch("SELECT source, error FROM rejected_inputs ORDER BY id")
    errors = {Path(row["source"].removeprefix("file:")).name: row["error"] for row in rejected}
    assert set(errors) == set(list(inputs)[:-1]), errors
    assert "metadata.device_id" in errors["nul.json"]
    assert "started_at" in errors["year0.json"]
    assert "stopped_at" in errors["stopped-year0.json"]
    assert "execution_id" in errors["bigint.json"]
    assert "database refused" in errors["refused.json"]
    assert [r["id"] for r in await db_pool.fetch("SELECT id FROM executions")] == [26]
