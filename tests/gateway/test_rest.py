"""The REST API against a real database: listing, filters, pagination, lookups, images."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from shared.contracts import ExecutionDetail, ExecutionSummary
from testkit.gateway import Gateway
from testkit.images import TINY_JPEG as JPEG
from testkit.images import TINY_PNG as PNG
from testkit.rows import T0, completed, insert_execution


@pytest.fixture
async def seeded(db_pool: asyncpg.Pool) -> None:
    """12 executions over 3 cameras in every stage and alert level."""
    await insert_execution(db_pool, 1, **completed(has_smoke=True, alert_level="critical"))
    await insert_execution(db_pool, 2, camera_id="sai-cam-node-02")
    await insert_execution(
        db_pool, 3, processing_stage="failed", stage2_error="bad base64", retry_count=3
    )
    await insert_execution(db_pool, 4, **completed(has_smoke=True, alert_level="high"))
    await insert_execution(db_pool, 5, camera_id="sai-cam-node-03", **completed())
    for execution_id in range(6, 13):
        await insert_execution(
            db_pool,
            execution_id,
            camera_id="sai-cam-node-02",
            **completed(has_smoke=execution_id % 2 == 0, alert_level="low"),
        )


def ids(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


@pytest.mark.usefixtures("seeded")
async def test_list_is_newest_first_and_cursor_pages_cover_everything_once(
    http: httpx.AsyncClient,
) -> None:
    first = await http.get("/api/executions")
    assert ids(first) == list(range(12, 0, -1))
    assert first.json()["next_cursor"] is None
    for item in first.json()["items"]:
        ExecutionSummary.model_validate(item, strict=False)  # the contract shape

    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 5}
        if cursor:
            params["cursor"] = cursor
        page = await http.get("/api/executions", params=params)
        seen += ids(page)
        pages += 1
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == list(range(12, 0, -1))
    assert pages == 3


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"has_smoke": "true"}, [12, 10, 8, 6, 4, 1]),
        ({"has_smoke": "false"}, [11, 9, 7, 5]),
        ({"alert_level": "critical"}, [1]),
        ({"alert_level": "low", "has_smoke": "true"}, [12, 10, 8, 6]),
        ({"camera": "sai-cam-node-03"}, [5]),
        ({"camera": "nowhere"}, []),
        ({"processing_stage": "stage1"}, [2]),
        ({"processing_stage": "failed"}, [3]),
        # since is inclusive, until exclusive (on started_at).
        ({"since": (T0 + timedelta(minutes=10)).isoformat()}, [12, 11, 10]),
        ({"until": (T0 + timedelta(minutes=3)).isoformat()}, [2, 1]),
        ({"since": "2025-08-01T12:04:00Z", "until": "2025-08-01T12:06:00Z"}, [5, 4]),
        ({"since": "2025-08-01T14:04:00+02:00", "until": "2025-08-01T12:06:00"}, [5, 4]),
    ],
)
async def test_filters(
    http: httpx.AsyncClient, params: dict[str, str], expected: list[int]
) -> None:
    assert ids(await http.get("/api/executions", params=params)) == expected


@pytest.mark.usefixtures("seeded")
async def test_filters_and_pagination_combine(http: httpx.AsyncClient) -> None:
    page = await http.get("/api/executions", params={"has_smoke": "true", "limit": 4})
    assert ids(page) == [12, 10, 8, 6]
    rest = await http.get(
        "/api/executions",
        params={"has_smoke": "true", "limit": 4, "cursor": page.json()["next_cursor"]},
    )
    assert ids(rest) == [4, 1]
    assert rest.json()["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"limit": "201"}, "limit", "at most 200"),
        ({"limit": "0"}, "limit", "greater than or equal to 1"),
        ({"limit": "ten"}, "limit", "valid integer"),
        ({"alert_level": "severe"}, "alert_level", "'none', 'low', 'medium', 'high' or 'critical'"),
        ({"processing_stage": "stage3"}, "processing_stage", "'stage1', 'stage2' or 'failed'"),
        ({"has_smoke": "maybe"}, "has_smoke", "valid boolean"),
        ({"since": "yesterday"}, "since", "valid datetime"),
        ({"since": "2025-08-02T00:00:00Z", "until": "2025-08-01T00:00:00Z"}, "until", "later"),
        ({"cursor": "bm90IGEgY3Vyc29y"}, "cursor", "invalid cursor"),
        ({"cursor": "!!!"}, "cursor", "invalid cursor"),
        ({"camera": "a\x00b"}, "camera", "pattern"),
    ],
)
async def test_bad_query_parameters_are_422_with_a_clear_message(
    http: httpx.AsyncClient, params: dict[str, str], field: str, message: str
) -> None:
    response = await http.get("/api/executions", params=params)
    assert response.status_code == 422
    errors = response.json()["detail"]
    # loc[:2]: a repeatable parameter (alert_level) also names the bad item's index.
    assert any(e["loc"][:2] == ["query", field] and message in e["msg"] for e in errors), errors


async def test_get_one_execution_and_404s(http: httpx.AsyncClient, db_pool: asyncpg.Pool) -> None:
    await insert_execution(db_pool, 42, **completed(has_smoke=True, alert_level="medium"))
    found = await http.get("/api/executions/42")
    assert found.status_code == 200
    execution = ExecutionDetail.model_validate(found.json(), strict=False)
    assert (execution.id, execution.alert_level, execution.has_image) == (42, "medium", False)
    assert execution.detections is None and execution.has_webp is False  # not recorded

    missing = await http.get("/api/executions/123")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "execution 123 not found"}
    assert missing.headers["content-type"] == "application/json"
    for bad in ("abc", "0", "-1", str(2**63)):
        assert (await http.get(f"/api/executions/{bad}")).status_code == 422, bad


async def test_detail_exposes_detections_and_source_metadata(
    http: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    detections = [
        {
            "class": "smoke",
            "confidence": 0.874,
            "bbox": {"x": 263, "y": 7, "width": 162, "height": 250},
        },
        {
            "class": "fire",
            "confidence": 0.5,
            "bbox": {"x": 0.5, "y": 1, "width": 2, "height": 3.25},
        },
    ]
    await insert_execution(
        db_pool,
        43,
        **completed(has_smoke=True, has_fire=True, alert_level="high", detection_count=2),
        detections=json.dumps(detections),
        captured_at=T0,
        device_id="sai-cam-node-07",
        model_version="yolov8s-smoke-2024.06",
        request_id="6f1c1d3e-8a55-4f0e-9a43-3f7f0f9b2a11",
        image_width=640,
        image_height=480,
        telegram_message_id=4711,
        source_status="success",
        webp_path="renditions/0/43.webp",
    )
    body = (await http.get("/api/executions/43")).json()
    assert body["detections"] == detections
    assert body["captured_at"] == "2025-08-01T12:00:00Z"
    assert (body["device_id"], body["model_version"], body["request_id"]) == (
        "sai-cam-node-07",
        "yolov8s-smoke-2024.06",
        "6f1c1d3e-8a55-4f0e-9a43-3f7f0f9b2a11",
    )
    assert (body["image_width"], body["image_height"]) == (640, 480)
    assert (body["telegram_message_id"], body["source_status"], body["has_webp"]) == (
        4711,
        "success",
        True,
    )
    # The listing carries the summary's share (no detections).
    (item,) = (await http.get("/api/executions")).json()["items"]
    assert item["captured_at"] == "2025-08-01T12:00:00Z"
    assert item["device_id"] == "sai-cam-node-07"
    assert "detections" not in item


async def test_images_and_thumbnails(
    gateway: Gateway, http: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    image_dir: Path = gateway.settings.image_dir
    (image_dir / "2025/08/01").mkdir(parents=True)
    (image_dir / "2025/08/01/7.jpg").write_bytes(JPEG)
    (image_dir / "2025/08/01/7_thumb.png").write_bytes(PNG)
    (image_dir / "2025/08/01/7.webp").write_bytes(b"RIFF\x00\x00\x00\x00WEBPVP8 ")
    (image_dir.parent / "secret.txt").write_text("not for you")
    await insert_execution(
        db_pool,
        7,
        **completed(image_path="2025/08/01/7.jpg", thumbnail_path="2025/08/01/7_thumb.png"),
        webp_path="2025/08/01/7.webp",
    )
    await insert_execution(db_pool, 8, **completed())  # no image
    await insert_execution(
        db_pool, 9, **completed(image_path="../secret.txt", thumbnail_path="/etc/passwd")
    )
    await insert_execution(db_pool, 10, **completed(image_path="2025/08/01/gone.jpg"))

    image = await http.get("/api/executions/7/image")
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/jpeg"
    assert image.content == JPEG
    thumbnail = await http.get("/api/executions/7/thumbnail")
    assert thumbnail.headers["content-type"] == "image/png"
    assert thumbnail.content == PNG
    webp = await http.get("/api/executions/7/webp")
    assert webp.headers["content-type"] == "image/webp"
    for response in (image, thumbnail, webp):
        # Long-lived: an execution's files never change once written.
        assert response.headers["cache-control"] == "private, max-age=31536000, immutable"
    assert (await http.get("/api/executions/7")).json()["has_image"] is True

    for path, detail in [
        ("/api/executions/8/image", "execution 8 has no image"),
        ("/api/executions/8/thumbnail", "execution 8 has no thumbnail"),
        ("/api/executions/8/webp", "execution 8 has no webp"),
        ("/api/executions/9/image", "execution 9 has no image"),  # escapes the image dir
        ("/api/executions/9/thumbnail", "execution 9 has no thumbnail"),  # absolute path
        ("/api/executions/10/image", "execution 10 has no image"),  # file missing
        ("/api/executions/404/image", "execution 404 not found"),
    ]:
        response = await http.get(path)
        assert response.status_code == 404, path
        assert response.json() == {"detail": detail}


async def test_cameras_are_distinct_and_sorted(
    http: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    assert (await http.get("/api/cameras")).json() == {"cameras": []}
    for execution_id, camera in enumerate(["cam-b", "cam-a", "cam-b", "cam-c", "cam-a"], 1):
        await insert_execution(db_pool, execution_id, camera_id=camera)
    assert (await http.get("/api/cameras")).json() == {"cameras": ["cam-a", "cam-b", "cam-c"]}
