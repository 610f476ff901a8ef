"""n8n run data for tests: the real run data n8n 1.123.81 stored (fixtures), and variants of it."""

from __future__ import annotations

import base64
import copy
import io
from pathlib import Path
from typing import Any

from PIL import Image

from services.etl.stage2 import flatted
from testkit.processes import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "etl" / "fixtures" / "n8n"
SUCCESS = "success-fire-and-smoke"
ERROR = "error-yolo-500"


def fixture_text(name: str) -> str:
    return (FIXTURES / f"{name}.flatted").read_text()


def fixture_root(name: str = SUCCESS) -> dict[str, Any]:
    root: dict[str, Any] = flatted.parse(fixture_text(name))
    return copy.deepcopy(root)


def jpeg(
    width: int = 640, height: int = 480, colour: tuple[int, int, int] = (90, 110, 130)
) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format="JPEG", quality=85)
    return out.getvalue()


def item(root: dict[str, Any], node: str) -> dict[str, Any]:
    found: dict[str, Any] = root["resultData"]["runData"][node][0]["data"]["main"][0][0]
    return found


def binary_id(root: dict[str, Any]) -> str:
    store_id: str = item(root, "Webhook")["binary"]["image"]["id"]
    return store_id


def place_frame(binary_dir: Path, root: dict[str, Any], data: bytes) -> Path:
    """Write the frame where n8n's filesystem-v2 store keeps the run's binary."""
    path = binary_dir / binary_id(root).removeprefix("filesystem-v2:")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def inline_frame(root: dict[str, Any], data: bytes) -> dict[str, Any]:
    """n8n's default binary mode: the frame as base64 in the run data."""
    entry = item(root, "Webhook")["binary"]["image"]
    entry.pop("id")
    entry["data"] = base64.b64encode(data).decode()
    return root


def with_telegram(root: dict[str, Any], message_id: int) -> dict[str, Any]:
    answer = {"ok": True, "result": {"message_id": message_id, "chat": {"id": -100}}}
    root["resultData"]["runData"]["Telegram"] = [
        {"startTime": 0, "executionTime": 3, "data": {"main": [[{"json": answer}]]}}
    ]
    return root


def text_of(root: dict[str, Any]) -> str:
    return flatted.stringify(root)
