"""`GET /api/export?format=csv|json&<filters>`: the filtered list as a download, streamed."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from services.gateway import export
from services.gateway.auth import require_viewer
from services.gateway.deps import Pool
from services.gateway.filters import FilterDep

router = APIRouter(prefix="/api", tags=["export"], dependencies=[Depends(require_viewer)])


@router.get("/export", response_class=StreamingResponse)
async def export_executions(
    pool: Pool, filters: FilterDep, format: export.ExportFormat = "csv"
) -> StreamingResponse:
    """Every execution passing the filters, newest first; the file name says the filter."""
    name = export.file_name(filters, format, datetime.now(UTC))
    return StreamingResponse(
        export.render(export.stream_rows(pool, filters), format),
        media_type=export.MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
