"""Operator triage: false-positive marks, alert acknowledgement, audit, open alerts and
a camera's frame sequence. (Detection boxes come with `GET /api/executions/{id}`.)"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.gateway import queries, triage
from services.gateway.auth import OperatorDep, Principal, require_viewer
from services.gateway.deps import Pool
from services.gateway.filters import as_utc
from shared.contracts import MAX_BULK_EXECUTIONS, ExecutionDetail, ExecutionSummary, TriageState

# Reading needs the viewer role; every change needs an operator (OperatorDep below).
router = APIRouter(prefix="/api", tags=["triage"], dependencies=[Depends(require_viewer)])

ExecutionIdParam = Annotated[int, PathParam(ge=1, le=2**63 - 1)]
ExecutionIdItem = Annotated[int, Field(ge=1, le=2**63 - 1)]
# Free text PostgreSQL can store (no NUL bytes), trimmed.
Actor = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=r"^[^\x00]+$"),
]
Reason = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=2000, pattern=r"^[^\x00]*$")
]


# Credentials that do not name a person: the typed name is recorded instead.
_SHARED_IDENTITIES = frozenset({"anonymous", "token"})


def _who(user: Principal, given: str | None) -> str:
    """The name for the audit trail: the signed-in user; else the name the operator typed."""
    if user.via not in _SHARED_IDENTITIES:
        return user.name  # a signed-in user cannot act under another name
    if given:
        return given
    if user.via == "token":
        return user.name  # the shared token's holder, unnamed
    raise HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        "actor is required: send your name as 'actor' (no user is signed in)",
    )


class FalsePositiveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    false_positive: bool = True
    reason: Reason | None = None
    actor: Actor | None = None


class BulkFalsePositiveRequest(FalsePositiveRequest):
    execution_ids: Annotated[
        list[ExecutionIdItem], Field(min_length=1, max_length=MAX_BULK_EXECUTIONS)
    ]


class AcknowledgeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    actor: Actor | None = None


class BulkAcknowledgeRequest(AcknowledgeRequest):
    execution_ids: Annotated[
        list[ExecutionIdItem], Field(min_length=1, max_length=MAX_BULK_EXECUTIONS)
    ]


class TriageResult(BaseModel):
    updated: list[TriageState]
    not_found: list[int]
    unchanged: list[int]


class AuditEntryOut(BaseModel):
    action: str
    actor: str
    reason: str | None
    at: datetime


class AuditTrail(BaseModel):
    execution_id: int
    entries: list[AuditEntryOut]


class SequencePage(BaseModel):
    items: list[ExecutionDetail]
    # Pass the last item's id as the anchor to continue; None: no more frames.
    next_anchor: int | None


class AlertList(BaseModel):
    items: list[ExecutionSummary]


def _result(outcome: triage.TriageOutcome) -> TriageResult:
    return TriageResult(
        updated=outcome.changed, not_found=outcome.not_found, unchanged=outcome.unchanged
    )


def _not_found(execution_id: int) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"execution {execution_id} not found")


# Declared before /executions/{execution_id}/…, so "bulk" is never read as an id.
@router.post("/executions/bulk/false-positive")
async def bulk_false_positive(
    body: BulkFalsePositiveRequest, pool: Pool, user: OperatorDep
) -> TriageResult:
    """Mark or unmark up to 500 executions; unknown ids are listed in `not_found`."""
    outcome = await triage.set_false_positive(
        pool,
        body.execution_ids,
        mark=body.false_positive,
        actor=_who(user, body.actor),
        reason=body.reason or None,
    )
    return _result(outcome)


@router.post("/executions/bulk/acknowledge")
async def bulk_acknowledge(
    body: BulkAcknowledgeRequest, pool: Pool, user: OperatorDep
) -> TriageResult:
    outcome = await triage.acknowledge(pool, body.execution_ids, actor=_who(user, body.actor))
    return _result(outcome)


@router.post(
    "/executions/{execution_id}/false-positive",
    responses={404: {"description": "no such execution"}},
)
async def mark_false_positive(
    execution_id: ExecutionIdParam, body: FalsePositiveRequest, pool: Pool, user: OperatorDep
) -> TriageState:
    """Mark (`false_positive: true`, the default) or unmark one execution."""
    outcome = await triage.set_false_positive(
        pool,
        [execution_id],
        mark=body.false_positive,
        actor=_who(user, body.actor),
        reason=body.reason or None,
    )
    if not outcome.changed:
        raise _not_found(execution_id)
    return outcome.changed[0]


@router.post(
    "/executions/{execution_id}/acknowledge",
    responses={404: {"description": "no such execution"}},
)
async def acknowledge_alert(
    execution_id: ExecutionIdParam, body: AcknowledgeRequest, pool: Pool, user: OperatorDep
) -> TriageResult:
    outcome = await triage.acknowledge(pool, [execution_id], actor=_who(user, body.actor))
    if outcome.not_found:
        raise _not_found(execution_id)
    return _result(outcome)


@router.get(
    "/executions/{execution_id}/audit", responses={404: {"description": "no such execution"}}
)
async def get_audit_trail(
    execution_id: ExecutionIdParam,
    pool: Pool,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditTrail:
    entries = await triage.audit_trail(pool, execution_id, limit)
    if not entries and not await queries.execution_exists(pool, execution_id):
        raise _not_found(execution_id)
    return AuditTrail(
        execution_id=execution_id,
        entries=[
            AuditEntryOut(action=e.action, actor=e.actor, reason=e.reason, at=e.at) for e in entries
        ],
    )


@router.get(
    "/executions/{execution_id}/sequence", responses={404: {"description": "no such execution"}}
)
async def get_sequence(
    execution_id: ExecutionIdParam,
    pool: Pool,
    direction: Literal["next", "previous"] = "next",
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> SequencePage:
    """The same camera's frames after (`next`) or before (`previous`) this one, by time.

    Nearest first; keyset-paginated: pass `next_anchor` as the id to go on.
    """
    items, more = await queries.camera_sequence(pool, execution_id, direction, limit)
    if not items and not await queries.execution_exists(pool, execution_id):
        raise _not_found(execution_id)
    return SequencePage(items=items, next_anchor=items[-1].id if more else None)


@router.get("/alerts")
async def list_open_alerts(
    pool: Pool,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AlertList:
    """High/critical results not yet acknowledged nor marked false positive, newest first."""
    # The same accepted range as the filters' since (a 422, never a database error).
    return AlertList(items=await queries.open_alerts(pool, as_utc(since, "since"), limit))
