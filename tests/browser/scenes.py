"""Camera-like JPEGs for the dashboard tests: a hillside, with a smoke plume when asked."""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

SIZE = (640, 480)
THUMBNAIL_SIZE = (320, 240)


def scene(seed: int, *, smoke: bool, fire: bool = False) -> Image.Image:
    rng = random.Random(seed)
    width, height = SIZE
    image = Image.new("RGB", SIZE)
    draw = ImageDraw.Draw(image)
    for row in range(height):  # sky: deep blue above, pale at the horizon
        t = row / height
        sky = (round(92 + 109 * t), round(142 + 80 * t), round(201 + 37 * t))
        draw.line([(0, row), (width, row)], fill=sky)
    for layer, colour in enumerate(((88, 118, 92), (60, 92, 62), (38, 66, 42))):
        base = height * (0.45 + 0.15 * layer)
        ridge: list[tuple[float, float]] = [(0, height)]
        ridge += [(x, base - rng.uniform(10, 70)) for x in range(0, width + 40, 40)]
        ridge.append((width, height))
        draw.polygon(ridge, fill=colour)
    if smoke:
        plume = Image.new("L", SIZE, 0)
        plume_draw = ImageDraw.Draw(plume)
        px = rng.uniform(0.3, 0.7) * width
        py = height * 0.62
        for step in range(14):  # puffs rising and drifting with the wind
            r = 12 + step * 6
            plume_draw.ellipse([px - r, py - r, px + r, py + r], fill=150 - step * 6)
            px += rng.uniform(4, 14)
            py -= 18
        plume = plume.filter(ImageFilter.GaussianBlur(14))
        image.paste(Image.new("RGB", SIZE, (205, 205, 200)), mask=plume)
    if fire:
        flames = Image.new("L", SIZE, 0)
        ImageDraw.Draw(flames).ellipse([300, 290, 360, 320], fill=255)
        flames = flames.filter(ImageFilter.GaussianBlur(6))
        image.paste(Image.new("RGB", SIZE, (255, 120, 20)), mask=flames)
    return image


def write_images(image_dir: Path, execution_id: int, *, smoke: bool, fire: bool = False) -> None:
    """`<id>.jpg` and `<id>_thumb.jpg` under image_dir, as Stage 2 would store them."""
    image_dir.mkdir(parents=True, exist_ok=True)
    image = scene(execution_id, smoke=smoke, fire=fire)
    image.save(image_dir / f"{execution_id}.jpg", quality=85)
    image.resize(THUMBNAIL_SIZE).save(image_dir / f"{execution_id}_thumb.jpg", quality=80)
