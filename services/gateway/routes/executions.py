"""Executions and cameras: the dashboard's first page, lookups by id, images."""

from __future__ import annotations

import logging
import mimetypes
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import BaseModel

from services.gateway import queries
from services.gateway.auth import require_viewer
from services.gateway.deps import Pool, Settings
from services.gateway.filters import FilterDep, query_error
from shared.contracts import ExecutionDetail, ExecutionSummary

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api", tags=["executions"], dependencies=[Depends(require_viewer)])


class ExecutionPage(BaseModel):
    items: list[ExecutionSummary]
    next_cursor: str | None


class CameraList(BaseModel):
    cameras: list[str]


# BIGINT range: anything else can name no execution (and would overflow the driver).
ExecutionIdParam = Annotated[int, PathParam(ge=1, le=2**63 - 1)]


def _not_found(execution_id: int) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"execution {execution_id} not found")


@router.get("/executions")
async def list_executions(
    pool: Pool,
    settings: Settings,
    filters: FilterDep,
    limit: Annotated[int, Query(ge=1)] = 50,
    cursor: Annotated[str | None, Query(max_length=queries.MAX_CURSOR_CHARS)] = None,
) -> ExecutionPage:
    """Newest first (by id), keyset-paginated: pass `next_cursor` back as `cursor`."""
    if limit > settings.api_max_page_size:
        raise query_error("limit", f"limit must be at most {settings.api_max_page_size}", limit)
    before_id = None
    if cursor:
        try:
            before_id = queries.decode_cursor(cursor)
        except queries.CursorError as exc:
            raise query_error("cursor", str(exc), cursor) from None
    page = await queries.list_executions(pool, filters, limit=limit, before_id=before_id)
    return ExecutionPage(items=page.items, next_cursor=page.next_cursor)


@router.get("/executions/{execution_id}", responses={404: {"description": "no such execution"}})
async def get_execution(execution_id: ExecutionIdParam, pool: Pool) -> ExecutionDetail:
    """The summary plus every detection (class, confidence, bbox in original-image
    pixels), model, request id, image size, Telegram message id, source status."""
    execution = await queries.get_execution(pool, execution_id)
    if execution is None:
        raise _not_found(execution_id)
    return execution


# An execution's image files never change once written (a Stage 2 retry writes the
# same bytes), so browsers keep them for a year; "private": they sit behind auth.
IMAGE_CACHE_CONTROL = "private, max-age=31536000, immutable"


async def _image_response(
    pool: Pool,
    settings: Settings,
    execution_id: int,
    kind: Literal["image", "thumbnail", "webp"],
) -> FileResponse:
    paths = await queries.get_image_paths(pool, execution_id)
    if paths is None:
        raise _not_found(execution_id)
    relative = {"image": paths.image, "thumbnail": paths.thumbnail, "webp": paths.webp}[kind]
    path = resolve_image(settings.image_dir, relative)
    if path is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"execution {execution_id} has no {kind}")
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if path.suffix == ".webp":
        media_type = "image/webp"  # not in every platform's mimetypes table
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": IMAGE_CACHE_CONTROL})


def resolve_image(image_dir: Path, relative: str | None) -> Path | None:
    """The file for a stored relative path, or None if absent or outside image_dir."""
    if not relative:
        return None
    root = image_dir.resolve()
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root):
        log.warning("refused image path outside the image directory", extra={"path": relative})
        return None
    return candidate if candidate.is_file() else None


@router.get("/executions/{execution_id}/image", response_class=FileResponse)
async def get_image(execution_id: ExecutionIdParam, pool: Pool, settings: Settings) -> FileResponse:
    return await _image_response(pool, settings, execution_id, "image")


@router.get("/executions/{execution_id}/thumbnail", response_class=FileResponse)
async def get_thumbnail(
    execution_id: ExecutionIdParam, pool: Pool, settings: Settings
) -> FileResponse:
    return await _image_response(pool, settings, execution_id, "thumbnail")


@router.get("/executions/{execution_id}/webp", response_class=FileResponse)
async def get_webp(execution_id: ExecutionIdParam, pool: Pool, settings: Settings) -> FileResponse:
    """The WebP rendition (n8n-sourced executions; `has_webp` in the detail says so)."""
    return await _image_response(pool, settings, execution_id, "webp")


@router.get("/cameras")
async def list_cameras(pool: Pool) -> CameraList:
    return CameraList(cameras=await queries.list_cameras(pool))
