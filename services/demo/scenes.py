"""Camera pictures for the demo generator: a landscape per camera, optionally with smoke/fire.

Pure Pillow drawing, deterministic per (camera, scenario, size) and cached, so
generating thousands of executions stays cheap.
"""

from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from PIL import Image, ImageDraw, ImageOps

Scenario = Literal["clear", "smoke", "fire", "fire-and-smoke"]
SCENARIOS: tuple[Scenario, ...] = ("clear", "smoke", "fire", "fire-and-smoke")
RGB = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Palette:
    sky_top: RGB
    sky_horizon: RGB
    ridge: RGB
    ground: RGB
    trees: RGB


# One look per camera (cycled when there are more cameras than palettes).
PALETTES: tuple[Palette, ...] = (
    Palette((40, 90, 170), (170, 200, 230), (70, 80, 100), (60, 110, 50), (25, 70, 30)),
    Palette((230, 120, 60), (250, 200, 140), (90, 60, 70), (120, 100, 60), (60, 60, 30)),
    Palette((20, 30, 70), (90, 100, 150), (30, 35, 50), (30, 50, 35), (15, 30, 20)),
    Palette((110, 160, 210), (220, 230, 240), (140, 140, 150), (170, 150, 100), (90, 110, 60)),
    Palette((80, 120, 160), (190, 170, 150), (100, 80, 60), (140, 120, 80), (70, 90, 40)),
    Palette((60, 140, 190), (200, 220, 210), (50, 90, 70), (80, 130, 60), (30, 80, 40)),
)


@dataclass(frozen=True, slots=True)
class Box:
    """A drawn smoke plume or fire, in pixels (what the fake YOLO 'detects')."""

    cls: Literal["fire", "smoke"]
    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Picture:
    jpeg: bytes
    width: int
    height: int
    boxes: tuple[Box, ...]


def _css(colour: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)


def _landscape(camera_index: int, width: int, height: int) -> tuple[Image.Image, int]:
    """Sky, ridge, ground and trees; returns the image and the horizon's y."""
    palette = PALETTES[camera_index % len(PALETTES)]
    rng = random.Random(camera_index)
    horizon = int(height * rng.uniform(0.55, 0.7))
    gradient = Image.linear_gradient("L").resize((width, height))
    sky_top, sky_horizon = _css(palette.sky_top), _css(palette.sky_horizon)
    image = ImageOps.colorize(gradient, sky_top, sky_horizon).convert("RGB")
    draw = ImageDraw.Draw(image)
    ridge: list[tuple[float, float]] = [(0, horizon)]
    for i in range(13):
        x = width * i / 12
        y = horizon - height * (0.08 + 0.22 * abs(math.sin(camera_index + i * rng.uniform(0.4, 1))))
        ridge.append((x, y))
    ridge.append((width, horizon))
    draw.polygon(ridge, fill=palette.ridge)
    draw.rectangle((0, horizon, width, height), fill=palette.ground)
    for _ in range(25):
        x = rng.uniform(0, width)
        y = rng.uniform(horizon, height)
        size = (y - horizon + 10) * 0.25
        draw.polygon([(x, y - size * 2), (x - size, y), (x + size, y)], fill=palette.trees)
    return image, horizon


def _smoke(image: Image.Image, origin: tuple[int, int], rng: random.Random) -> Box:
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    x, y = float(origin[0]), float(origin[1])
    scale = image.height / 480
    left, top, right, bottom = x, y, x, y
    drift = rng.uniform(0.5, 2.0)
    for step in range(14):
        radius = (6 + step * 3) * scale
        cx = x + step * drift * 6 * scale
        cy = y - step * 11 * scale
        grey = 200 - step * 4
        draw.ellipse(
            (cx - radius, cy - radius, cx + radius, cy + radius),
            fill=(grey, grey, grey, 150 - step * 6),
        )
        left, top = min(left, cx - radius), min(top, cy - radius)
        right, bottom = max(right, cx + radius), max(bottom, cy + radius)
    image.paste(Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB"))
    return _clipped_box("smoke", left, top, right, bottom, image.size)


def _fire(image: Image.Image, origin: tuple[int, int], rng: random.Random) -> Box:
    draw = ImageDraw.Draw(image)
    x, y = origin
    scale = image.height / 480
    width, height = 40 * scale, 30 * scale
    for colour, shrink in (((200, 40, 10), 1.0), ((250, 130, 20), 0.7), ((255, 220, 80), 0.4)):
        w, h = width * shrink, height * shrink
        points: list[tuple[float, float]] = [(x - w / 2, y)]
        for i in range(1, 6):
            points.append((x - w / 2 + w * i / 6, y - h * rng.uniform(0.5, 1)))
        points.append((x + w / 2, y))
        draw.polygon(points, fill=colour)
    return _clipped_box("fire", x - width / 2, y - height, x + width / 2, y, image.size)


def _clipped_box(
    cls: Literal["fire", "smoke"],
    left: float,
    top: float,
    right: float,
    bottom: float,
    size: tuple[int, int],
) -> Box:
    left, top = max(0, int(left)), max(0, int(top))
    right, bottom = min(size[0], int(right)), min(size[1], int(bottom))
    return Box(cls, left, top, max(1, right - left), max(1, bottom - top))


def _encode(image: Image.Image, noise_sigma: float) -> bytes:
    if noise_sigma > 0:
        # Sensor grain: also the knob that makes JPEGs as big as a benchmark wants.
        noise = Image.effect_noise(image.size, noise_sigma).convert("RGB")
        image = Image.blend(image, noise, 0.12)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


@lru_cache(maxsize=256)
def render_picture(
    camera_index: int,
    scenario: Scenario,
    label: str,
    width: int = 640,
    height: int = 480,
    target_bytes: int | None = None,
) -> Picture:
    """A JPEG of this camera; with target_bytes, resized until within ~15% of it."""
    if target_bytes is None:
        return _render(camera_index, scenario, label, width, height, noise_sigma=8)
    for _ in range(8):
        picture = _render(camera_index, scenario, label, width, height, noise_sigma=40)
        ratio = target_bytes / len(picture.jpeg)
        if 0.85 <= ratio <= 1.15:
            break
        # JPEG size of a grainy picture grows about linearly with its pixel count.
        factor = math.sqrt(ratio)
        width, height = max(16, int(width * factor)), max(16, int(height * factor))
    return picture


def _render(
    camera_index: int, scenario: Scenario, label: str, width: int, height: int, noise_sigma: float
) -> Picture:
    image, horizon = _landscape(camera_index, width, height)
    rng = random.Random(f"{camera_index}:{scenario}")
    boxes: list[Box] = []
    origin = (int(width * rng.uniform(0.25, 0.7)), horizon - int(height * 0.05))
    if scenario in ("smoke", "fire-and-smoke"):
        boxes.append(_smoke(image, origin, rng))
    if scenario in ("fire", "fire-and-smoke"):
        boxes.append(_fire(image, (origin[0], origin[1] + int(height * 0.04)), rng))
    ImageDraw.Draw(image).text((8, 8), label, fill=(255, 255, 255))
    return Picture(_encode(image, noise_sigma), width, height, tuple(boxes))
