"""Hostile inputs for the bad-input tests: raw executions, images, bus messages."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from services.demo.generator import make_raw_execution
from testkit.images import png_bomb


@dataclass(frozen=True, slots=True)
class Stage2Case:
    """A raw execution that passes Stage 1 and must fail Stage 2 with `error` in its message."""

    name: str
    make: Callable[[int], dict[str, Any]]
    error: str


def _with(
    execution_id: int, change: Callable[[dict[str, Any]], None], **kwargs: Any
) -> dict[str, Any]:
    raw = make_raw_execution(execution_id, **kwargs)
    change(raw)
    return raw


def _image(mime_type: str, data: bytes) -> Callable[[dict[str, Any]], None]:
    def change(raw: dict[str, Any]) -> None:
        raw["image"] = {"mime_type": mime_type, "data_base64": base64.b64encode(data).decode()}

    return change


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    def change(raw: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = raw
        for key in parents:
            node = node[key]
        node[leaf] = value

    return change


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def change(raw: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = raw
        for key in parents:
            node = node[key]
        del node[leaf]

    return change


# The pipeline runs with ETL_MAX_IMAGE_BYTES=OVERSIZE_LIMIT; the rest are the defaults.
OVERSIZE_LIMIT = 100_000
BOMB_SIDE = 10_000  # 100 megapixels, over the default ETL_MAX_IMAGE_PIXELS (40 M)

STAGE2_CASES = [
    Stage2Case(
        "missing field",
        lambda i: _with(i, _delete("inference.alert_level")),
        "malformed raw execution: inference.alert_level: Field required",
    ),
    Stage2Case(
        "wrong type",
        lambda i: _with(i, _set("inference.detection_count", "1")),
        "malformed raw execution: inference.detection_count: Input should be a valid integer",
    ),
    Stage2Case(
        "bad base64",
        lambda i: _with(i, _set("image.data_base64", "this is *not* base64!")),
        "image.data_base64 is not valid base64",
    ),
    Stage2Case(
        "not an image",
        lambda i: _with(i, _image("image/jpeg", b"%PDF-1.4 definitely not a picture")),
        "image.data_base64 is not an image Pillow can identify",
    ),
    Stage2Case(
        "image over the size limit",
        lambda i: make_raw_execution(i, image_bytes=OVERSIZE_LIMIT * 2),
        f"over the limit of {OVERSIZE_LIMIT} (ETL_MAX_IMAGE_BYTES)",
    ),
    Stage2Case(
        "decompression bomb",
        lambda i: _with(i, _image("image/png", png_bomb(BOMB_SIDE, BOMB_SIDE))),
        f"image is {BOMB_SIDE}x{BOMB_SIDE} = {BOMB_SIDE**2} pixels, over the limit",
    ),
]

# Raw text Stage 1 must refuse (never an execution), with the field named in the error.
STAGE1_CASES: list[tuple[str, Callable[[int], str], str]] = [
    ("invalid JSON", lambda i: f'{{"execution_id": {i}, "workflow_id": ', "Invalid JSON"),
    (
        "missing field",
        lambda i: json.dumps(_with(i, _delete("metadata.device_id"))),
        "metadata.device_id: Field required",
    ),
    (
        "wrong type",
        lambda i: json.dumps(_with(i, _set("execution_id", str(i)))),
        "execution_id: Input should be a valid integer",
    ),
    (
        "wrong type",
        lambda i: json.dumps(_with(i, _set("started_at", 12345))),
        "started_at:",
    ),
]
