"""A camera simulator: posts frames to the workflow's webhook as SAI's cameras do (multipart)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

CAMERAS = (
    ("sai-cam-node-01", "cam-01-north", "Cerro Negro", "rtsp"),
    ("sai-cam-node-02", "cam-02-east", "Bosque Peralta Ramos", "ip"),
    ("sai-cam-node-07", "cam-07-south", "Laguna de los Padres", "usb"),
)


@dataclass(frozen=True, slots=True)
class Frame:
    number: int
    jpeg: bytes
    scenario: str = "clear"  # what the YOLO stand-in will detect
    delay_ms: int = 0  # the stand-in answers this late: runs finish out of order
    fail: bool = False  # the stand-in answers 500: the n8n run ends in error
    captured_at: str = "2025-10-10_04-33-52"  # SAI's camera format

    @property
    def camera(self) -> tuple[str, str, str, str]:
        return CAMERAS[self.number % len(CAMERAS)]


async def post_frame(client: httpx.AsyncClient, webhook_url: str, frame: Frame) -> None:
    device_id, camera_id, location, camera_type = frame.camera
    response = await client.post(
        webhook_url,
        data={
            "device_id": device_id,
            "camera_id": camera_id,
            "location": location,
            "camera_type": camera_type,
            "timestamp": frame.captured_at,
            "frame": str(frame.number),
            "scenario": frame.scenario,
            "delay_ms": str(frame.delay_ms),
            "fail": "1" if frame.fail else "0",
        },
        files={"image": (f"frame-{frame.number}.jpg", frame.jpeg, "image/jpeg")},
    )
    response.raise_for_status()
