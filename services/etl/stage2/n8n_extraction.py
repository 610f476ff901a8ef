"""Stage 2 of an execution that came from n8n: decode its run data, read the
frame from n8n's binary store (or inline), store original + WebP + thumbnail."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from services.etl.errors import InvalidImage, MalformedExecution, PermanentError
from services.etl.stage2 import steps
from services.etl.stage2.images import ImageLimits, StoredImage, decode_base64, save_image_bytes
from services.etl.stage2.jobs import Stage2Details, Stage2Result
from services.etl.stage2.n8n_run import (
    N8nRun,
    NodeNames,
    binary_path,
    decode_run_data,
    extract_run,
    n8n_error,
)
from services.etl.stage2.steps import StepClock
from shared.settings import EtlSettings


def node_names(settings: EtlSettings) -> NodeNames:
    return NodeNames(
        webhook=settings.n8n_webhook_node,
        metadata=settings.n8n_metadata_node,
        inference=settings.n8n_inference_node,
        telegram=settings.n8n_telegram_node,
        image_property=settings.n8n_image_property,
    )


class N8nRunFailed(PermanentError):
    """n8n itself ended the run in error (or canceled/crashed): recorded with its reason."""


@dataclass(frozen=True, slots=True)
class N8nStage2Config:
    names: NodeNames
    binary_dir: Path | None  # N8N_BINARY_DATA_DIR: n8n's filesystem binary store
    webp_max_px: int | None  # the WebP rendition's longest side (None: no rendition)


def read_frame(
    run: N8nRun, execution_id: int, config: N8nStage2Config, max_bytes: int
) -> bytes | None:
    """The frame's bytes, from n8n's binary store or inline base64.

    open + fstat + read + close: a file object would add two fstats, an lseek and
    a read to find the end (each a GIL hand-off).
    """
    if run.image is None:
        return None
    if run.image.base64_data is not None:
        return decode_base64(run.image.base64_data, max_bytes)
    assert run.image.store_id is not None
    path = binary_path(config.binary_dir, run.image.store_id, execution_id)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise MalformedExecution(
            f"the frame's file is missing from n8n's binary store: {path} "
            f"(binary id {run.image.store_id[:120]}; is N8N_BINARY_DATA_DIR n8n's storage path?)"
        ) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise MalformedExecution(f"the frame's binary id names a directory: {path}")
        if info.st_size > max_bytes:
            raise InvalidImage(
                f"image is {info.st_size} bytes, over the limit of {max_bytes} "
                "(ETL_MAX_IMAGE_BYTES)"
            )
        return read_to_end(fd, info.st_size)
    finally:
        os.close(fd)


def read_to_end(fd: int, size: int) -> bytes:
    """The file's bytes; `size` (from fstat) saves the read that would find the end."""
    data = os.read(fd, size + 1)
    if len(data) <= size:
        return data  # a regular file reads short only at its end
    chunks = [data]  # it grew since: read on
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def process_n8n_execution(
    execution_id: int,
    text: str,
    status: str,
    config: N8nStage2Config,
    image_dir: Path,
    limits: ImageLimits,
) -> tuple[N8nRun, StoredImage | None]:
    """Blocking (decode, file read, image work): run it in a thread."""
    if not text:
        raise MalformedExecution(
            "n8n run data: n8n stored none for this execution (no execution_data row)"
        )
    clock = StepClock()
    root = decode_run_data(text)
    failure = n8n_error(root, status)
    if failure is not None:
        raise N8nRunFailed(failure)
    run = extract_run(root, config.names)
    clock.lap(steps.RUN_DATA)
    data = read_frame(run, execution_id, config, limits.max_bytes)
    clock.lap(steps.FRAME)
    image = None
    if data is not None and run.image is not None:
        image = save_image_bytes(
            data,
            run.image.mime_type,
            execution_id,
            image_dir,
            limits,
            webp_max_px=config.webp_max_px,
            clock=clock,
        )
    return run, image


def detections_json(run: N8nRun) -> str:
    return json.dumps([d.model_dump(by_alias=True) for d in run.detections], separators=(",", ":"))


async def run_n8n_stage2(
    execution_id: int,
    text: str,
    status: str,
    config: N8nStage2Config,
    image_dir: Path,
    limits: ImageLimits,
) -> Stage2Result:
    run, image = await asyncio.to_thread(
        process_n8n_execution, execution_id, text, status, config, image_dir, limits
    )
    return Stage2Result(
        has_smoke=run.has_smoke,
        has_fire=run.has_fire,
        alert_level=run.alert_level,
        detection_count=len(run.detections),
        confidence=run.confidence,
        telegram_sent=run.telegram_sent,
        image=image,
        details=Stage2Details(
            detections_json=detections_json(run),
            model_version=run.model_version,
            request_id=run.request_id,
            image_width=run.image_width or (image.width if image else None),
            image_height=run.image_height or (image.height if image else None),
            telegram_message_id=run.telegram_message_id,
            captured_at=run.captured_at,
            device_id=run.device_id,
            camera_id=run.camera_id,
            location=run.location,
            camera_type=run.camera_type,
        ),
    )
