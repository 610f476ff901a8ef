"""A workflow shaped like SAI's smoke detection: Webhook → Metadata → YOLO Inference → Telegram.

The node names are SAI's (the ETL reads node outputs by these names, which are
configurable). The YOLO and Telegram nodes are HTTP requests to local stand-ins
(`standins.py`); the frame's test controls ride in the webhook's form fields.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from services.etl.stage2.n8n_run import NodeNames

WEBHOOK_PATH = "sai-frame"


@dataclass(frozen=True, slots=True)
class WorkflowNames(NodeNames):
    """The nodes the ETL reads (their defaults are SAI's; `image_property` is the multipart
    field, and so the n8n binary property, that carries the frame) and the workflow's own
    IF node, which the ETL does not read."""

    alert: str = "Alert?"


SAI_NAMES = WorkflowNames()


def _node(
    name: str, node_type: str, version: float, position: int, **parameters: Any
) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"smokesignal/{name}")),
        "name": name,
        "type": node_type,
        "typeVersion": version,
        "position": [position * 220, 300],
        "parameters": parameters,
    }


def _form(name: str) -> str:
    return f"={{{{ $json.body.{name} }}}}"


def sai_workflow(
    *,
    workflow_id: str,
    yolo_url: str,
    telegram_url: str,
    webhook_path: str = WEBHOOK_PATH,
    names: WorkflowNames = SAI_NAMES,
) -> dict[str, Any]:
    """The workflow as `n8n import:workflow` reads it (active, so its webhook is live)."""
    webhook = _node(
        names.webhook,
        "n8n-nodes-base.webhook",
        2,
        0,
        httpMethod="POST",
        path=webhook_path,
        responseMode="onReceived",
        options={},
    )
    webhook["webhookId"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"smokesignal/{webhook_path}"))
    metadata_fields = ("device_id", "camera_id", "location", "camera_type", "timestamp")
    metadata_expression = (
        "={{ {" + ", ".join(f"{field}: $json.body.{field}" for field in metadata_fields) + "} }}"
    )
    metadata = _node(
        names.metadata,
        "n8n-nodes-base.set",
        3.3,  # 3.4 drops the input's binary (the frame the YOLO node sends)
        1,
        mode="manual",
        assignments={
            "assignments": [
                {
                    "id": "metadata",
                    "name": "metadata",
                    "value": metadata_expression,
                    "type": "object",
                },
                {"id": "frame", "name": "frame", "value": _form("frame"), "type": "string"},
                {
                    "id": "scenario",
                    "name": "scenario",
                    "value": _form("scenario"),
                    "type": "string",
                },
                {
                    "id": "delay_ms",
                    "name": "delay_ms",
                    "value": _form("delay_ms"),
                    "type": "string",
                },
                {"id": "fail", "name": "fail", "value": _form("fail"), "type": "string"},
                {"id": "boxes", "name": "boxes", "value": _form("boxes"), "type": "string"},
            ]
        },
        options={"includeBinary": True},
    )
    query = [
        {"name": "camera_id", "value": "={{ $json.metadata.camera_id }}"},
        {"name": "frame", "value": "={{ $json.frame }}"},
        {"name": "scenario", "value": "={{ $json.scenario }}"},
        {"name": "delay_ms", "value": "={{ $json.delay_ms }}"},
        {"name": "fail", "value": "={{ $json.fail }}"},
        {"name": "boxes", "value": "={{ $json.boxes }}"},
    ]
    inference = _node(
        names.inference,
        "n8n-nodes-base.httpRequest",
        4.2,
        2,
        method="POST",
        url=yolo_url,
        sendQuery=True,
        queryParameters={"parameters": query},
        sendBody=True,
        contentType="binaryData",
        inputDataFieldName=names.image_property,
        options={},
    )
    alert = _node(
        names.alert,
        "n8n-nodes-base.if",
        2.2,
        3,
        conditions={
            "options": {
                "caseSensitive": True,
                "leftValue": "",
                "typeValidation": "loose",
                "version": 2,
            },
            "conditions": [
                {
                    "id": "alert",
                    "leftValue": "={{ ['high', 'critical'].includes($json.alert_level) }}",
                    "rightValue": "",
                    "operator": {"type": "boolean", "operation": "true", "singleValue": True},
                }
            ],
            "combinator": "and",
        },
        options={},
    )
    telegram = _node(
        names.telegram,
        "n8n-nodes-base.httpRequest",
        4.2,
        4,
        method="POST",
        url=telegram_url,
        sendBody=True,
        specifyBody="json",
        jsonBody=(
            "={{ JSON.stringify({chat_id: '-100123456789', text: 'Smoke alert frame=' + "
            + f"$('{names.metadata}').item.json.frame + ' ' + $json.alert_level}}) }}}}"
        ),
        options={},
    )

    def to(node: str) -> list[dict[str, Any]]:
        return [{"node": node, "type": "main", "index": 0}]

    return {
        "id": workflow_id,
        "name": "SAI smoke detection (smokesignal)",
        "active": True,
        "nodes": [webhook, metadata, inference, alert, telegram],
        "connections": {
            names.webhook: {"main": [to(names.metadata)]},
            names.metadata: {"main": [to(names.inference)]},
            names.inference: {"main": [to(names.alert)]},
            names.alert: {"main": [to(names.telegram), []]},
        },
        "settings": {
            "executionOrder": "v1",
            "saveDataSuccessExecution": "all",
            "saveDataErrorExecution": "all",
            "saveManualExecutions": True,
        },
        "pinData": {},
        "versionId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"smokesignal/{workflow_id}")),
    }
