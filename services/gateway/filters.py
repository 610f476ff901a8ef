"""The dashboard's filters as one FastAPI dependency, shared by the list, count, statistics
and export routes, so a link's query string means the same thing on every one of them.

`alert_level` may repeat (`?alert_level=high&alert_level=critical`): any of them matches.
Times without an offset are UTC; `since` is inclusive, `until` exclusive.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Query
from fastapi.exceptions import RequestValidationError

from services.gateway.queries import ExecutionFilter
from shared.contracts import AlertLevel, ProcessingStage

# Text PostgreSQL can compare (no NUL bytes).
TextParam = Annotated[str | None, Query(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]


def query_error(name: str, message: str, value: object) -> RequestValidationError:
    """A 422 naming the query parameter, shaped like FastAPI's own validation errors."""
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", name), "msg": message, "input": value}]
    )


# The accepted range of since/until. Python's datetime reaches year 1 with any
# offset, which PostgreSQL's driver cannot send (0001-01-01T00:00+23:59 is in year 0
# in UTC): a time outside this range is a 422, never a database error.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


def as_utc(value: datetime | None, name: str = "since") -> datetime | None:
    """`value` in UTC (a time without an offset is taken as UTC), within the range."""
    if value is None:
        return None
    try:
        in_utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        in_utc = None
    if in_utc is None or not EARLIEST <= in_utc <= LATEST:
        raise query_error(
            name,
            f"{name} must be between {EARLIEST.isoformat()} and {LATEST.isoformat()}",
            value.isoformat(),
        )
    return in_utc


def execution_filter(
    has_smoke: bool | None = None,
    alert_level: Annotated[list[AlertLevel] | None, Query()] = None,
    camera: TextParam = None,
    location: TextParam = None,
    since: datetime | None = None,
    until: datetime | None = None,
    processing_stage: ProcessingStage | None = None,
    false_positive: Annotated[
        bool | None, Query(description="true: only false positives; false: hide them")
    ] = None,
) -> ExecutionFilter:
    since, until = as_utc(since, "since"), as_utc(until, "until")
    if since is not None and until is not None and since >= until:
        raise query_error("until", "until must be later than since", until.isoformat())
    return ExecutionFilter(
        has_smoke=has_smoke,
        alert_levels=tuple(dict.fromkeys(alert_level or ())),  # de-duplicated, in order
        camera=camera,
        location=location,
        since=since,
        until=until,
        processing_stage=processing_stage,
        false_positive=false_positive,
    )


FilterDep = Annotated[ExecutionFilter, Depends(execution_filter)]
