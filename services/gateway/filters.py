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


def as_utc(value: datetime | None) -> datetime | None:
    # An ISO-8601 time without an offset is taken as UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


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
    since, until = as_utc(since), as_utc(until)
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
