"""Stage 2 of one execution: validate the raw JSON, extract the results, store the image."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from services.etl import metrics
from services.etl.errors import DemoTransientFailure, MalformedExecution
from services.etl.stage1.raw_format import Inference, RawExecution, parse_execution
from services.etl.stage2 import steps
from services.etl.stage2.images import ImageLimits, save_execution_image
from services.etl.stage2.jobs import Stage2Details, Stage2Result
from services.etl.stage2.n8n_extraction import N8nStage2Config, run_n8n_stage2
from services.etl.stage2.n8n_run import NodeNames
from services.etl.stage2.steps import StepClock

# Defaults: SAI's node names, no binary store, no WebP rendition.
NO_N8N = N8nStage2Config(NodeNames(), None, None)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Stage2Config:
    image_dir: Path
    limits: ImageLimits
    # How executions that came from n8n are read (node names, binary store).
    n8n: N8nStage2Config = NO_N8N
    # ETL_DEMO_MODE: honour the raw `demo` block. Off by default: in production
    # input it would let anyone who can ingest stall a worker's slots.
    demo_mode: bool = False


async def apply_demo_options(execution: RawExecution, attempt: int, *, enabled: bool) -> None:
    """Honour the demo block: be slow (out-of-order completion) and/or fail the first N tries.

    With demo mode off the block is ignored — the execution is processed normally —
    and that is recorded: a warning log line and a metric (first attempt only).
    """
    demo = execution.demo
    if demo is None or not (demo.stage2_delay_ms or demo.transient_failures):
        return
    if not enabled:
        if attempt == 1:
            metrics.DEMO_HOOKS_IGNORED.inc()
            log.warning(
                "demo block ignored: ETL_DEMO_MODE is off",
                extra={"execution_id": execution.execution_id},
            )
        return
    if demo.stage2_delay_ms:
        await asyncio.sleep(demo.stage2_delay_ms / 1000)
    if attempt <= demo.transient_failures:
        raise DemoTransientFailure(
            f"demo transient failure (attempt {attempt} of {demo.transient_failures} "
            "planned failures)"
        )


def detections_json(inference: Inference) -> str:
    """The detections as stored in executions.detections (JSON text)."""
    return json.dumps(
        [
            {
                "class": d.class_,
                "confidence": d.confidence,
                "bbox": {
                    "x": d.bbox.x,
                    "y": d.bbox.y,
                    "width": d.bbox.width,
                    "height": d.bbox.height,
                },
            }
            for d in inference.detections
        ],
        separators=(",", ":"),
    )


async def run_stage2(
    execution_id: int,
    raw: str,
    attempt: int,
    config: Stage2Config,
    *,
    source_format: str = "raw",
    source_status: str | None = None,
) -> Stage2Result:
    """Raises MalformedExecution / InvalidImage (permanent) or anything else (transient)."""
    if source_format == "n8n":
        return await run_n8n_stage2(
            execution_id,
            raw,
            source_status or "success",
            config.n8n,
            config.image_dir,
            config.limits,
        )
    clock = StepClock()  # this (the event loop's) thread; the image thread has its own
    execution = parse_execution(raw)
    clock.lap(steps.RUN_DATA)
    if execution.execution_id != execution_id:
        raise MalformedExecution(
            f"malformed raw execution: execution_id is {execution.execution_id} "
            f"but it is stored as execution {execution_id}"
        )
    await apply_demo_options(execution, attempt, enabled=config.demo_mode)
    image = None
    if execution.image is not None:
        # Decoding, verifying and thumbnailing are CPU work: keep the event loop free.
        image = await asyncio.to_thread(
            save_execution_image, execution.image, execution_id, config.image_dir, config.limits
        )
    inference = execution.inference
    return Stage2Result(
        details=Stage2Details(
            detections_json=detections_json(inference),
            model_version=inference.model_version,
            request_id=str(inference.request_id),
            image_width=inference.image_width,
            image_height=inference.image_height,
            telegram_message_id=execution.telegram.message_id,
        ),
        has_smoke=inference.has_smoke,
        has_fire=inference.has_fire,
        alert_level=inference.alert_level,
        detection_count=inference.detection_count,
        confidence=inference.confidence,
        telegram_sent=execution.telegram.sent,
        image=image,
    )
