"""Statistics over the filtered executions: count, totals, time series, rankings.

Every route takes the same filters as `GET /api/executions` (services/gateway/filters.py)
and reads the hourly roll-ups (services/gateway/stats.py): exact, and independent of the
number of executions.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from services.gateway import stats
from services.gateway.auth import require_viewer
from services.gateway.deps import Pool
from services.gateway.filters import FilterDep, query_error

router = APIRouter(prefix="/api/stats", tags=["stats"], dependencies=[Depends(require_viewer)])


class Count(BaseModel):
    count: int
    exact: bool = True  # always, today; a client shows "about" when it is not


class TimeSeries(BaseModel):
    interval: stats.Interval
    tz: str
    buckets: list[stats.Bucket]


class Ranking(BaseModel):
    by: stats.RankBy
    order: str
    items: list[stats.Ranked]


@router.get("/count")
async def count(pool: Pool, filters: FilterDep) -> Count:
    """How many executions pass the filters (exact)."""
    return Count(count=await stats.count(pool, filters))


@router.get("/summary")
async def summary(pool: Pool, filters: FilterDep) -> stats.Totals:
    """Totals: executions, smoke detections, alert levels, false positives, confidence."""
    return await stats.summary(pool, filters)


TimeZoneParam = Annotated[str, Query(min_length=1, max_length=64)]


@router.get("/timeseries")
async def timeseries(
    pool: Pool,
    filters: FilterDep,
    interval: stats.Interval = "hour",
    tz: TimeZoneParam = "UTC",
) -> TimeSeries:
    """Totals per hour, day or week (days and weeks start at midnight in `tz`)."""
    if not stats.valid_time_zone(tz):
        raise query_error("tz", "unknown time zone (use an IANA name like America/Cordoba)", tz)
    buckets = await stats.timeseries(pool, filters, interval, tz)
    return TimeSeries(interval=interval, tz=tz, buckets=buckets)


@router.get("/ranking")
async def ranking(
    pool: Pool,
    filters: FilterDep,
    by: stats.RankBy = "camera",
    order: Literal["smoke", "false_positives", "executions"] = "smoke",
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> Ranking:
    """Cameras or locations with the most smoke detections (or false positives)."""
    items = await stats.ranking(pool, filters, by, order, limit)
    return Ranking(by=by, order=order, items=items)


class LocationList(BaseModel):
    locations: list[str]


@router.get("/locations")
async def locations(pool: Pool) -> LocationList:
    """Every location that has executions (from the roll-ups: one row per group)."""
    return LocationList(locations=await stats.locations(pool))
