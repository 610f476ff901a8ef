from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest
from PIL import Image

from services.demo.generator import make_raw_execution
from services.demo.scenes import render_picture
from services.etl.errors import InvalidImage
from services.etl.stage1.raw_format import RawImage
from services.etl.stage2.images import (
    REUSED_IMAGE_BLOCKS,
    ImageLimits,
    StoredImage,
    draft_scale_within,
    fit_within,
    reuse_image_memory,
    save_execution_image,
    save_image_bytes,
    write_atomically,
)
from testkit.images import encoded

LIMITS = ImageLimits(max_bytes=1_000_000, max_pixels=2_000_000, thumbnail_px=64)


def raw_image(data: bytes, mime: str = "image/jpeg") -> RawImage:
    return RawImage(mime_type=mime, data_base64=base64.b64encode(data).decode())  # type: ignore[arg-type]


def test_original_and_thumbnail_are_written_under_relative_paths(tmp_path: Path) -> None:
    jpeg = render_picture(0, "smoke", "cam").jpeg
    stored = save_execution_image(raw_image(jpeg), 1234, tmp_path, LIMITS)
    assert stored.image_path == "originals/1/1234.jpg"
    assert stored.thumbnail_path == "thumbnails/1/1234.jpg"
    assert (stored.width, stored.height) == (640, 480)
    assert (tmp_path / stored.image_path).read_bytes() == jpeg
    with Image.open(tmp_path / stored.thumbnail_path) as thumbnail:
        assert thumbnail.format == "JPEG"
        assert max(thumbnail.size) == 64
    # A retry overwrites the same files and leaves no temporary files behind.
    save_execution_image(raw_image(jpeg), 1234, tmp_path, LIMITS)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["1234.jpg", "1234.jpg"]


def test_png_keeps_its_format(tmp_path: Path) -> None:
    stored = save_execution_image(
        raw_image(encoded((50, 40), "PNG"), "image/png"), 7, tmp_path, LIMITS
    )
    assert stored.image_path == "originals/0/7.png"
    assert stored.thumbnail_path == "thumbnails/0/7.jpg"


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (
            RawImage(mime_type="image/jpeg", data_base64="not *base64*"),
            r"image\.data_base64 is not valid base64",
        ),
        (raw_image(b"just some text, not a picture"), r"not an image Pillow can identify"),
        (raw_image(encoded((20, 20), "PNG")), r"mime_type is image/jpeg but the data is a PNG"),
        (raw_image(encoded((20, 20), "GIF"), "image/png"), r"format GIF is not one of"),
        (
            raw_image(render_picture(1, "clear", "cam").jpeg[:3000]),
            r"image data is corrupt: image file is truncated",
        ),
    ],
)
def test_bad_images_are_rejected_with_a_clear_error(
    tmp_path: Path, image: RawImage, message: str
) -> None:
    with pytest.raises(InvalidImage, match=message):
        save_execution_image(image, 1, tmp_path, LIMITS)
    assert not any(tmp_path.rglob("*.*"))


def test_oversized_image_is_rejected_before_decoding(tmp_path: Path) -> None:
    big = render_picture(2, "clear", "cam").jpeg
    limits = ImageLimits(max_bytes=len(big) // 2, max_pixels=10**8, thumbnail_px=64)
    with pytest.raises(InvalidImage, match=r"over the limit of .* \(ETL_MAX_IMAGE_BYTES\)"):
        save_execution_image(raw_image(big), 1, tmp_path, limits)


def test_decompression_bomb_is_rejected_by_the_pixel_limit(tmp_path: Path) -> None:
    # A tiny file that would decode to 25 megapixels.
    bomb = encoded((5000, 5000), "PNG")
    assert len(bomb) < 100_000
    with pytest.raises(InvalidImage, match=r"5000x5000 = 25000000 pixels, over the limit"):
        save_execution_image(raw_image(bomb, "image/png"), 1, tmp_path, LIMITS)


BENCH_LIMITS = ImageLimits(max_bytes=1_000_000, max_pixels=2_000_000, thumbnail_px=320)


def large_jpeg() -> bytes:
    raw = make_raw_execution(5, image_bytes=100_000)
    return base64.b64decode(raw["image"]["data_base64"])


def test_draft_decoded_thumbnail_keeps_the_original_size_and_bytes(tmp_path: Path) -> None:
    jpeg = large_jpeg()
    stored = save_execution_image(raw_image(jpeg), 5, tmp_path, BENCH_LIMITS)
    size = Image.open(io.BytesIO(jpeg)).size
    assert size[0] >= 2 * 320  # big enough for libjpeg to decode at reduced scale
    assert (stored.width, stored.height) == size
    assert (tmp_path / stored.image_path).read_bytes() == jpeg
    with Image.open(tmp_path / stored.thumbnail_path) as thumbnail:
        assert thumbnail.size == fit_within(size, 320)
        assert max(thumbnail.size) == 320


@pytest.mark.parametrize("kept", [0.5, 0.9, 0.99])
def test_truncated_jpeg_is_caught_by_the_draft_decode(tmp_path: Path, kept: float) -> None:
    # The thumbnail decode runs at 1/2 scale here; it must still read the whole scan.
    jpeg = large_jpeg()
    cut = jpeg[: int(len(jpeg) * kept)]
    with pytest.raises(InvalidImage, match=r"image data is corrupt: image file is truncated"):
        save_execution_image(raw_image(cut), 1, tmp_path, BENCH_LIMITS)
    assert not any(tmp_path.rglob("*.*"))


def test_base64_with_line_breaks_is_accepted(tmp_path: Path) -> None:
    jpeg = render_picture(0, "smoke", "cam").jpeg
    wrapped = RawImage(mime_type="image/jpeg", data_base64=base64.encodebytes(jpeg).decode())
    stored = save_execution_image(wrapped, 9, tmp_path, LIMITS)
    assert (tmp_path / stored.image_path).read_bytes() == jpeg


@pytest.fixture
def pillow_blocks_max() -> Iterator[None]:
    before = Image.core.get_blocks_max()  # type: ignore[attr-defined]
    yield
    Image.core.set_blocks_max(before)  # type: ignore[attr-defined]


@pytest.mark.usefixtures("pillow_blocks_max")
def test_pillow_keeps_freed_image_blocks_unless_the_operator_chose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    Image.core.set_blocks_max(0)  # type: ignore[attr-defined]
    monkeypatch.setenv("PILLOW_BLOCKS_MAX", "0")
    reuse_image_memory()
    assert Image.core.get_blocks_max() == 0  # type: ignore[attr-defined]
    monkeypatch.delenv("PILLOW_BLOCKS_MAX")
    reuse_image_memory()
    assert Image.core.get_blocks_max() == REUSED_IMAGE_BLOCKS  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("size", "max_px", "scale"),
    [
        ((850, 637), 640, 2),  # 425 fits
        ((640, 480), 640, 1),
        ((1280, 720), 640, 2),  # exactly 640
        ((1920, 1080), 640, 4),  # 960 does not fit, 480 does
        ((1281, 720), 640, 4),  # 641 (Pillow rounds up) does not fit
        ((9000, 100), 640, 8),  # even 1125 does not fit: 1/8, then a resize
    ],
)
def test_draft_scale_within_is_the_smallest_reduction_that_fits(
    size: tuple[int, int], max_px: int, scale: int
) -> None:
    assert draft_scale_within(size, max_px) == scale


def save_with_rendition(data: bytes, tmp_path: Path, mime: str = "image/jpeg") -> StoredImage:
    return save_image_bytes(data, mime, 5, tmp_path, BENCH_LIMITS, webp_max_px=640)


def test_a_large_jpeg_rendition_is_decoded_at_the_scale_that_fits(tmp_path: Path) -> None:
    jpeg = large_jpeg()
    size = Image.open(io.BytesIO(jpeg)).size
    assert max(size) > 640
    stored = save_with_rendition(jpeg, tmp_path)
    assert stored.webp_path == "renditions/0/5.webp"
    assert (stored.width, stored.height) == size
    assert (tmp_path / stored.image_path).read_bytes() == jpeg
    with Image.open(tmp_path / stored.webp_path) as webp:
        # libjpeg's 1/2 scale, rounded up like Pillow's draft; no resampling after it.
        assert (webp.format, webp.size) == ("WEBP", ((size[0] + 1) // 2, (size[1] + 1) // 2))
        assert 640 // 2 < max(webp.size) <= 640
    with Image.open(tmp_path / stored.thumbnail_path) as thumbnail:
        assert max(thumbnail.size) == 320


def test_a_jpeg_that_fits_keeps_its_size_and_the_thumbnail_is_still_made(tmp_path: Path) -> None:
    # The thumbnail (80 px) is made from the full-size rendition.
    limits = ImageLimits(max_bytes=1_000_000, max_pixels=2_000_000, thumbnail_px=80)
    jpeg = encoded((640, 480), "JPEG")
    stored = save_image_bytes(jpeg, "image/jpeg", 6, tmp_path, limits, webp_max_px=640)
    assert stored.webp_path is not None
    with Image.open(tmp_path / stored.webp_path) as webp:
        assert webp.size == (640, 480)
    with Image.open(tmp_path / stored.thumbnail_path) as thumbnail:
        assert thumbnail.size == (80, 60)
        assert thumbnail.getpixel((40, 30)) == pytest.approx((10, 120, 30), abs=8)


def test_a_large_png_rendition_is_resized_to_fit(tmp_path: Path) -> None:
    stored = save_with_rendition(encoded((1000, 500), "PNG"), tmp_path, "image/png")
    assert stored.webp_path is not None
    with Image.open(tmp_path / stored.webp_path) as webp:
        assert webp.size == (640, 320)


@pytest.mark.parametrize("kept", [0.5, 0.99])
def test_truncated_jpeg_is_caught_by_the_rendition_decode(tmp_path: Path, kept: float) -> None:
    jpeg = large_jpeg()
    with pytest.raises(InvalidImage, match=r"image data is corrupt: image file is truncated"):
        save_with_rendition(jpeg[: int(len(jpeg) * kept)], tmp_path)
    assert not any(tmp_path.rglob("*.*"))


def test_write_atomically_writes_bytes_views_and_what_a_writer_writes(tmp_path: Path) -> None:
    data = bytes(range(256)) * 1000
    write_atomically(tmp_path / "a" / "bytes", data)
    write_atomically(tmp_path / "a" / "view", memoryview(data)[10:])

    def writer(out: BinaryIO) -> None:
        out.write(data[:5])

    write_atomically(tmp_path / "a" / "writer", writer)
    assert (tmp_path / "a" / "bytes").read_bytes() == data
    assert (tmp_path / "a" / "view").read_bytes() == data[10:]
    assert (tmp_path / "a" / "writer").read_bytes() == data[:5]

    def fails(out: BinaryIO) -> None:
        raise RuntimeError("encoder failed")

    with pytest.raises(RuntimeError):
        write_atomically(tmp_path / "a" / "bytes", fails)
    # The old file stays whole and no temporary file is left behind.
    assert (tmp_path / "a" / "bytes").read_bytes() == data
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["bytes", "view", "writer"]
