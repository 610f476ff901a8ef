"""`python -m bench.experiments.stage2_image_cost`: CPU per ~100 KB JPEG in Stage 2's
image step, as the ETL does it now and with JPEG draft decoding for the thumbnail.

Single thread, no I/O: `load_image` + `make_thumbnail` from services.etl.stage2.images
(the current code) versus the same checks with `Image.draft` — libjpeg decodes
at 1/2, 1/4 or 1/8 scale directly (every entropy-coded byte is still read, so
truncation is still caught) and the resize has little or nothing left to do.
Writes bench/results/stage2_image_cost.json.
"""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path
from typing import Any

from PIL import Image

from services.demo.generator import make_raw_execution
from services.etl.stage2.images import THUMBNAIL_QUALITY, load_image, make_thumbnail

OUT = Path(__file__).parents[1] / "results" / "stage2_image_cost.json"
THUMB_PX = 320


def current(data: bytes) -> bytes:
    image = load_image(data, "image/jpeg", 40_000_000)
    return make_thumbnail(image, THUMB_PX)


def with_draft(data: bytes) -> bytes:
    opened = Image.open(io.BytesIO(data))
    opened.draft("RGB", (THUMB_PX, THUMB_PX))
    opened.load()
    image: Image.Image = opened if opened.mode == "RGB" else opened.convert("RGB")
    image.thumbnail((THUMB_PX, THUMB_PX))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=THUMBNAIL_QUALITY)
    return out.getvalue()


def per_image_ms(step: Any, images: list[bytes], rounds: int) -> float:
    started = time.process_time()
    for _ in range(rounds):
        for data in images:
            step(data)
    return round((time.process_time() - started) * 1000 / (rounds * len(images)), 2)


def main() -> None:
    raws = [make_raw_execution(k, image_bytes=100_000) for k in range(1, 9)]
    images = [base64.b64decode(r["image"]["data_base64"]) for r in raws]
    size = Image.open(io.BytesIO(images[0])).size
    result = {
        "images": len(images),
        "mean_bytes": sum(map(len, images)) // len(images),
        "pixels": f"{size[0]}x{size[1]}",
        "current_ms_per_image": per_image_ms(current, images, 10),
        "draft_ms_per_image": per_image_ms(with_draft, images, 10),
    }
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
