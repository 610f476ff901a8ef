"""Reading one n8n run of SAI's workflow: node outputs by name, validated strictly.

Input: the execution's run data (`execution_data.data`, flatted) as Stage 1
stored it, plus n8n's status. Output: what Stage 2 stores. Required nodes
(the webhook with the frame, Metadata, YOLO Inference) missing → a permanent
error naming the node; optional fields missing → None (never a made-up
default); a run n8n itself ended in error → a permanent error carrying n8n's
status and message, so the execution is shown as failed with n8n's reason.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from services.etl.errors import MalformedExecution
from services.etl.stage1.raw_format import Detection, describe_validation_error
from services.etl.stage2 import flatted
from shared.contracts import AlertLevel

# n8n statuses of a run that is over.
FINISHED_STATUSES = ("success", "error", "canceled", "crashed")
FILESYSTEM_PREFIX = "filesystem-v2:"
MAX_DETECTIONS = 1000
# SAI's cameras write "2025-10-10_04-33-52" (UTC); ISO 8601 is accepted too.
_SAI_TIMESTAMP = re.compile(r"^(\d{4}-\d{2}-\d{2})[_T ](\d{2})[-:](\d{2})[-:](\d{2})(\.\d+)?$")


@dataclass(frozen=True, slots=True)
class NodeNames:
    """Which nodes of the workflow hold what (configurable: N8N_*_NODE)."""

    webhook: str = "Webhook"
    metadata: str = "Metadata"
    inference: str = "YOLO Inference"
    telegram: str = "Telegram"
    image_property: str = "image"


@dataclass(frozen=True, slots=True)
class BinaryRef:
    """The frame: a file in n8n's filesystem-v2 store, or inline base64."""

    mime_type: str
    store_id: str | None  # "filesystem-v2:workflows/…/binary_data/<uuid>"
    base64_data: str | None


@dataclass(frozen=True, slots=True)
class N8nRun:
    image: BinaryRef | None
    device_id: str | None
    camera_id: str | None
    location: str | None
    camera_type: str | None
    captured_at: datetime | None
    detections: list[Detection]
    has_smoke: bool
    has_fire: bool
    alert_level: AlertLevel
    request_id: str | None
    model_version: str | None
    image_width: int | None
    image_height: int | None
    telegram_sent: bool
    telegram_message_id: int | None

    @property
    def confidence(self) -> float | None:
        return max((d.confidence for d in self.detections), default=None)


def _fail(message: str) -> MalformedExecution:
    return MalformedExecution(f"n8n run data: {message}")


def decode_run_data(text: str) -> dict[str, Any]:
    try:
        root = flatted.parse(text)
    except flatted.FlattedError as exc:
        raise MalformedExecution(f"n8n run data: {exc}") from None
    if not isinstance(root, dict):
        raise _fail("the root is not an object")
    return root


def run_data_of(root: dict[str, Any]) -> dict[str, Any]:
    result = root.get("resultData")
    if not isinstance(result, dict):
        raise _fail("resultData is missing")
    run_data = result.get("runData")
    if not isinstance(run_data, dict):
        raise _fail("resultData.runData is missing")
    return run_data


def first_item(run_data: dict[str, Any], node: str) -> dict[str, Any] | None:
    """`runData[node][0].data.main[0][0]`: the node's first output item (None: did not run)."""
    runs = run_data.get(node)
    if not isinstance(runs, list) or not runs or not isinstance(runs[0], dict):
        return None
    data = runs[0].get("data")
    main = data.get("main") if isinstance(data, dict) else None
    if not isinstance(main, list) or not main:
        return None
    output = main[0]
    if not isinstance(output, list) or not output or not isinstance(output[0], dict):
        return None
    return output[0]


def required_json(run_data: dict[str, Any], node: str, setting: str) -> dict[str, Any]:
    item = first_item(run_data, node)
    if item is None:
        raise _fail(f"required node {node!r} has no output ({setting} names it)")
    value = item.get("json")
    if not isinstance(value, dict):
        raise _fail(f"node {node!r}: output item has no json object")
    return value


def n8n_error(root: dict[str, Any], status: str) -> str | None:
    """n8n's own failure of the run, as users should read it (None: the run succeeded)."""
    result = root.get("resultData")
    error = result.get("error") if isinstance(result, dict) else None
    if status == "success" and error is None:
        return None
    message = "no error recorded"
    node_name = None
    if isinstance(error, dict):
        message = str(error.get("message") or error.get("description") or message)
        description = error.get("description")
        if isinstance(description, str) and description and description != message:
            message = f"{message} ({description})"
        node = error.get("node")
        if isinstance(node, dict) and isinstance(node.get("name"), str):
            node_name = node["name"]
    if node_name is None and isinstance(result, dict):
        last = result.get("lastNodeExecuted")
        node_name = last if isinstance(last, str) else None
    where = f" at node {node_name!r}" if node_name else ""
    return f"n8n execution ended with status {status!r}{where}: {message[:500]}"


def _optional_str(value: Any, field: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _fail(f"{field} should be a string, not {type(value).__name__}")
    return value


def parse_captured_at(value: str | None, field: str) -> datetime | None:
    if value is None:
        return None
    match = _SAI_TIMESTAMP.match(value)
    if match:
        date, hour, minute, second, fraction = match.groups()
        return datetime.fromisoformat(f"{date}T{hour}:{minute}:{second}{fraction or ''}").replace(
            tzinfo=UTC
        )
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _fail(f"{field} {value[:40]!r} is not a timestamp") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def derive_alert_level(detections: list[Detection]) -> AlertLevel:
    """SAI's YOLO answer may omit alert_level: derived from the best confidence."""
    return alert_level_for(max((d.confidence for d in detections), default=None))


def alert_level_for(best: float | None) -> AlertLevel:
    """SAI's YOLO thresholds on the best detection's confidence (None: no detection)."""
    if best is None:
        return "none"
    if best >= 0.85:
        return "critical"
    if best >= 0.7:
        return "high"
    if best >= 0.5:
        return "medium"
    return "low"


def _bbox(raw: Any) -> Any:
    """SAI's {x, y, width, height}; also {x1, y1, x2, y2} corners, converted."""
    if isinstance(raw, dict) and "width" not in raw and {"x1", "y1", "x2", "y2"} <= raw.keys():
        try:
            return {
                "x": raw["x1"],
                "y": raw["y1"],
                "width": raw["x2"] - raw["x1"],
                "height": raw["y2"] - raw["y1"],
            }
        except TypeError:
            return raw  # validation names the bad field
    return raw


def parse_detections(raw: Any, node: str) -> list[Detection]:
    if not isinstance(raw, list):
        raise _fail(f"node {node!r}: json.detections is missing or not a list")
    if len(raw) > MAX_DETECTIONS:
        raise _fail(f"node {node!r}: {len(raw)} detections, over the limit of {MAX_DETECTIONS}")
    found = []
    for index, item in enumerate(raw):
        if isinstance(item, dict) and "bbox" in item:
            item = {**item, "bbox": _bbox(item["bbox"])}
        try:
            found.append(Detection.model_validate(item))
        except ValidationError as exc:
            problem = describe_validation_error(exc)
            raise _fail(f"node {node!r}: json.detections.{index}: {problem}") from None
    return found


def _optional_int(value: Any, field: str, minimum: int | None = None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise _fail(f"{field} should be an integer, not {value!r:.40}")
    if minimum is not None and value < minimum:
        raise _fail(f"{field} should be at least {minimum}, not {value}")
    return int(value)


def _image(run_data: dict[str, Any], names: NodeNames) -> BinaryRef | None:
    item = first_item(run_data, names.webhook)
    if item is None:
        raise _fail(f"required node {names.webhook!r} has no output (N8N_WEBHOOK_NODE names it)")
    binary = item.get("binary")
    if binary is None:
        return None
    entry = binary.get(names.image_property) if isinstance(binary, dict) else None
    if entry is None:
        return None
    field = f"node {names.webhook!r}: binary.{names.image_property}"
    if not isinstance(entry, dict):
        raise _fail(f"{field} is not an object")
    mime = entry.get("mimeType")
    if not isinstance(mime, str):
        raise _fail(f"{field}.mimeType is missing")
    store_id = entry.get("id")
    if isinstance(store_id, str) and store_id:
        return BinaryRef(mime, store_id, None)
    data = entry.get("data")
    if isinstance(data, str) and data and data != "filesystem-v2":
        return BinaryRef(mime, None, data)
    raise _fail(f"{field} has neither an id in the binary store nor inline data")


def _telegram(run_data: dict[str, Any], names: NodeNames) -> tuple[bool, int | None]:
    item = first_item(run_data, names.telegram)
    if item is None:
        return False, None
    answer = item.get("json")
    if not isinstance(answer, dict):
        return True, None
    # n8n's Telegram node outputs the sent message; an HTTP call to the Bot API, {ok, result}.
    message = answer.get("result") if isinstance(answer.get("result"), dict) else answer
    message_id = message.get("message_id") if isinstance(message, dict) else None
    return True, _optional_int(message_id, f"node {names.telegram!r}: json.message_id")


def extract_run(root: dict[str, Any], names: NodeNames) -> N8nRun:
    """Everything Stage 2 stores, from a decoded successful run."""
    run_data = run_data_of(root)
    image = _image(run_data, names)
    metadata_json = required_json(run_data, names.metadata, "N8N_METADATA_NODE")
    metadata = metadata_json.get("metadata")
    if not isinstance(metadata, dict):
        raise _fail(f"node {names.metadata!r}: json.metadata is missing")
    inference = required_json(run_data, names.inference, "N8N_INFERENCE_NODE")
    node = names.inference
    detections = parse_detections(inference.get("detections"), node)
    classes = {d.class_ for d in detections}
    count = _optional_int(inference.get("detection_count"), f"node {node!r}: json.detection_count")
    if count is not None and count != len(detections):
        raise _fail(
            f"node {node!r}: json.detection_count is {count} but detections has "
            f"{len(detections)} entries"
        )
    alert_level = inference.get("alert_level")
    if alert_level is None:
        alert_level = derive_alert_level(detections)
    elif alert_level not in ("none", "low", "medium", "high", "critical"):
        raise _fail(f"node {node!r}: json.alert_level {str(alert_level)[:40]!r} is not a level")
    size = inference.get("image_size")
    size = size if isinstance(size, dict) else {}
    sent, message_id = _telegram(run_data, names)
    camera_id = _optional_str(metadata.get("camera_id"), "json.metadata.camera_id")
    return N8nRun(
        image=image,
        device_id=_optional_str(metadata.get("device_id"), "json.metadata.device_id"),
        camera_id=camera_id or _optional_str(inference.get("camera_id"), "json.camera_id"),
        location=_optional_str(metadata.get("location"), "json.metadata.location"),
        camera_type=_optional_str(metadata.get("camera_type"), "json.metadata.camera_type"),
        captured_at=parse_captured_at(
            _optional_str(metadata.get("timestamp"), "json.metadata.timestamp"),
            "json.metadata.timestamp",
        ),
        detections=detections,
        has_smoke="smoke" in classes,
        has_fire="fire" in classes,
        alert_level=alert_level,
        request_id=_optional_str(inference.get("request_id"), f"node {node!r}: json.request_id"),
        model_version=_optional_str(inference.get("version"), f"node {node!r}: json.version"),
        image_width=_optional_int(size.get("width"), "json.image_size.width", 1),
        image_height=_optional_int(size.get("height"), "json.image_size.height", 1),
        telegram_sent=sent,
        telegram_message_id=message_id,
    )


@functools.lru_cache(maxsize=4)
def resolved_store(binary_dir: Path) -> Path:
    """N8N_BINARY_DATA_DIR with its symlinks resolved, once (an lstat per component)."""
    return binary_dir.resolve()


def binary_path(binary_dir: Path | None, store_id: str, execution_id: int) -> Path:
    """The file behind a filesystem-v2 id; refuses ids that would leave the store."""
    if not store_id.startswith(FILESYSTEM_PREFIX):
        raise _fail(
            f"binary id {store_id[:60]!r} is in a store smokesignal cannot read "
            "(only n8n's filesystem-v2 mode or inline data)"
        )
    if binary_dir is None:
        raise MalformedExecution(
            "the frame is in n8n's filesystem binary store but N8N_BINARY_DATA_DIR is not set"
        )
    relative = store_id[len(FILESYSTEM_PREFIX) :]
    root = resolved_store(binary_dir)
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise _fail(f"binary id {store_id[:80]!r} points outside N8N_BINARY_DATA_DIR")
    if not path.exists() and "/executions/temp/" in relative:
        # n8n may move a run's files from executions/temp/ to executions/<id>/.
        moved = root / relative.replace("/executions/temp/", f"/executions/{execution_id}/")
        if moved.exists():
            return moved
    return path
