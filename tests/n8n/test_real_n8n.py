"""A real n8n feeding smokesignal, end to end (reduced; `make test-n8n` runs 1,000 frames).

Frames are POSTed to a real n8n 1.123.81's webhook; the SAI-shaped workflow calls
a YOLO stand-in (some answers fail → the n8n run ends in error; some are slow →
runs finish out of order) and a Telegram stand-in on alerts. Every execution
must reach every SSE client with the right detections and image.
"""

from __future__ import annotations

import os
from pathlib import Path

import asyncpg
import pytest

from testkit.infra import Infra
from testkit.n8n.e2e import make_frames, run_end_to_end
from testkit.pipeline import Pipelines

# N8N_E2E_FRAMES=1000 (make test-n8n) turns this into the done-criterion.
FRAMES = int(os.environ.get("N8N_E2E_FRAMES", "40"))


@pytest.mark.timeout(1800)
async def test_frames_posted_to_n8n_reach_every_sse_client_with_detections_and_image(
    infra: Infra, pipelines: Pipelines, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    frames = make_frames(FRAMES, fail_share=0.1, slow_share=0.25)
    await run_end_to_end(
        admin_database_url=infra.database_url,
        pipelines=pipelines,
        db_pool=db_pool,
        tmp_path=tmp_path,
        frames=frames,
        clients=3,
        concurrency=8,
    )
