"""Test images: plain encoded pictures, camera scenes as Stage 2 stores them, a PNG bomb."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

from PIL import Image

from services.demo.scenes import Scenario, render_picture

THUMBNAIL_SIZE = (320, 240)

TINY_JPEG = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300080606070605080707070909080a0c"
    "140d0c0b0b0c1912130f141d1a1f1e1d1a1c1c20242e2720222c231c1c2837292c30313434341f27"
    "393d38323c2e333432ffc0000b080001000101011100ffc4001f0000010501010101010100000000"
    "000000000102030405060708090a0bffc400b5100002010303020403050504040000017d01020300"
    "041105122131410613516107227114328191a1082342b1c11552d1f02433627282090a161718191a"
    "25262728292a3435363738393a434445464748494a535455565758595a636465666768696a737475"
    "767778797a838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9ba"
    "c2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9faffda"
    "0008010100003f00fbd3ffd9"
)
TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478"
    "9c6360000002000154a24f5d0000000049454e44ae426082"
)


def encoded(size: tuple[int, int], fmt: str) -> bytes:
    """A flat green picture of `size` in format `fmt` (JPEG, PNG, WEBP…)."""
    out = io.BytesIO()
    Image.new("RGB", size, (10, 120, 30)).save(out, format=fmt)
    return out.getvalue()


def write_execution_images(
    image_dir: Path, execution_id: int, *, smoke: bool, fire: bool = False
) -> None:
    """`<id>.jpg` and `<id>_thumb.jpg` under image_dir, as Stage 2 would store them."""
    scenario: Scenario = (
        "fire-and-smoke" if smoke and fire else "smoke" if smoke else "fire" if fire else "clear"
    )
    image_dir.mkdir(parents=True, exist_ok=True)
    jpeg = render_picture(execution_id, scenario, f"execution {execution_id}").jpeg
    (image_dir / f"{execution_id}.jpg").write_bytes(jpeg)
    with Image.open(io.BytesIO(jpeg)) as picture:
        picture.resize(THUMBNAIL_SIZE).save(image_dir / f"{execution_id}_thumb.jpg", quality=80)


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit greyscale PNG of width x height zero pixels: kilobytes on disk,
    width * height bytes once Pillow decodes it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )
