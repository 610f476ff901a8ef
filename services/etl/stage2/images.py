"""Execution images: decode, verify with Pillow, store the original and a thumbnail.

Only relative paths (under the configured image directory) leave this module;
the gateway serves them from its own IMAGE_DIR.
"""

from __future__ import annotations

import binascii
import contextlib
import io
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pybase64
from PIL import Image, UnidentifiedImageError

from services.etl.errors import InvalidImage
from services.etl.stage1.raw_format import RawImage
from services.etl.stage2 import steps
from services.etl.stage2.steps import StepClock

# Pillow format name -> (mime type, file extension).
FORMATS: dict[str, tuple[str, str]] = {
    "JPEG": ("image/jpeg", "jpg"),
    "PNG": ("image/png", "png"),
    "WEBP": ("image/webp", "webp"),
}
THUMBNAIL_QUALITY = 80
# Pillow frees each image's memory block at once by default: every image then
# costs fresh mmap'd pages (page faults, zeroing). Keeping a few freed blocks
# for reuse (Pillow's PILLOW_BLOCKS_MAX) cut the kernel time per image by more than
# half (0.76 -> 0.31 ms single-threaded, 100 KB JPEG).
REUSED_IMAGE_BLOCKS = 8
# The WebP rendition: quality 80 looks like the original on screen; method 0 is
# libwebp's fastest (counted: 53 M instructions for 640x480 against 4x that at
# the default 4 and 2x at method 2; quality 70 saves only 8 %).
WEBP_QUALITY = 80
WEBP_METHOD = 0
# libjpeg's decode scales (1/1, 1/2, 1/4, 1/8), which Pillow's draft() offers.
JPEG_DRAFT_SCALES = (1, 2, 4, 8)
# Modes the thumbnail is resized and encoded in without a conversion first.
THUMBNAIL_MODES = ("RGB", "YCbCr")


def reuse_image_memory(blocks: int = REUSED_IMAGE_BLOCKS) -> None:
    """Let Pillow keep freed image blocks for the next image (process-wide),
    unless PILLOW_BLOCKS_MAX is set: then Pillow has applied it already."""
    if "PILLOW_BLOCKS_MAX" in os.environ:
        return
    # The runtime form of PILLOW_BLOCKS_MAX (Pillow's block allocator docs).
    Image.core.set_blocks_max(blocks)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class ImageLimits:
    max_bytes: int
    max_pixels: int
    thumbnail_px: int


@dataclass(frozen=True, slots=True)
class StoredImage:
    image_path: str  # relative to the image directory
    thumbnail_path: str
    width: int
    height: int
    webp_path: str | None = None  # a WebP rendition, when one was made


def decode_base64(data: str, max_bytes: int) -> bytes:
    """The image bytes; InvalidImage for bad base64 or an oversized image."""
    text = data
    # Checked before decoding so an oversized payload costs no memory twice.
    if len(text) * 3 // 4 > max_bytes:
        text = "".join(text.split())  # line breaks do not count
    approx_size = len(text) * 3 // 4
    if approx_size > max_bytes:
        raise InvalidImage(
            f"image is about {approx_size} bytes, over the limit of {max_bytes} "
            "(ETL_MAX_IMAGE_BYTES)"
        )
    try:
        # The usual case is one line: decode it without copying the text first.
        # pybase64 (SIMD) is ~40x faster than binascii, which holds the GIL
        # for the whole ~0.3 ms a 100 KB image takes (the worker's image
        # threads share that GIL with its event loop).
        return pybase64.b64decode(text, validate=True)
    except binascii.Error as exc:
        error = exc
    compact = "".join(text.split())  # tolerate MIME-style line breaks
    if compact != text:
        try:
            return pybase64.b64decode(compact, validate=True)
        except binascii.Error as exc:
            error = exc
    raise InvalidImage(f"image.data_base64 is not valid base64: {error}") from None


def open_image(data: bytes, declared_mime: str, max_pixels: int) -> Image.Image:
    """Identify the image from its header (no pixel data decoded yet).

    Rejects non-images, formats other than JPEG/PNG/WebP, a mime type that does
    not match the data, and decompression bombs (pixel count, before decoding).
    """
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise InvalidImage("image.data_base64 is not an image Pillow can identify") from None
    except Image.DecompressionBombError as exc:
        raise InvalidImage(f"image rejected as a decompression bomb: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:  # cut inside its header: not transient
        raise InvalidImage(f"image data is corrupt: {exc}") from None
    if image.format not in FORMATS:
        raise InvalidImage(f"image format {image.format} is not one of JPEG, PNG, WEBP")
    actual_mime = FORMATS[image.format][0]
    if actual_mime != declared_mime:
        raise InvalidImage(
            f"image.mime_type is {declared_mime} but the data is a {image.format} image"
        )
    width, height = image.size
    if width * height > max_pixels:
        raise InvalidImage(
            f"image is {width}x{height} = {width * height} pixels, over the limit of "
            f"{max_pixels} (ETL_MAX_IMAGE_PIXELS; decompression bomb guard)"
        )
    return image


def fit_within(size: tuple[int, int], max_px: int) -> tuple[int, int]:
    """`size` scaled down (never up) so its longest side is at most max_px."""
    width, height = size
    scale = min(max_px / width, max_px / height, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


def decode_for_thumbnail(image: Image.Image, max_px: int) -> Image.Image:
    """Decode every byte of the image's data, at the smallest size the thumbnail allows.

    This is the full decode that verifies the file (truncated or corrupt data
    raises here). For a JPEG, `draft` makes libjpeg scale by 1/2, 1/4 or 1/8
    while decoding: it still reads and entropy-decodes the whole scan (so
    truncation is caught exactly as by a full-size decode) but skips most of
    the inverse DCT and leaves the resize little to do. PNG and WebP ignore
    `draft` and decode at full size. A colour JPEG stays in YCbCr: the
    thumbnail is resized and re-encoded in it, so neither the decode nor the
    encode converts colours (grey and CMYK JPEGs keep their own mode).
    """
    image.draft("YCbCr", fit_within(image.size, max_px))
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImage(f"image data is corrupt: {exc}") from None
    return image


def draft_scale_within(size: tuple[int, int], max_px: int) -> int:
    """The smallest of libjpeg's decode scales (1/1, 1/2, 1/4, 1/8) at which
    an image of `size` fits within max_px (1/8 when none does)."""
    longest = max(size)
    for scale in JPEG_DRAFT_SCALES:
        if -(-longest // scale) <= max_px:  # Pillow rounds a draft's size up
            return scale
    return JPEG_DRAFT_SCALES[-1]


def decode_for_rendition(image: Image.Image, max_px: int) -> Image.Image:
    """Decode every byte of the image's data (which verifies it) into an RGB
    picture fitting max_px: the WebP rendition, and the thumbnail's source.

    A JPEG larger than max_px is decoded at the largest of libjpeg's 1/2, 1/4,
    1/8 scales that fits (so its longest side ends between max_px/2 and
    max_px), straight into RGB: libjpeg's DCT scaling and its SIMD colour
    conversion do the downscale, and no resampling follows. Counted with
    callgrind for an 850x637, 96 KB JPEG and max_px 640, that is 14 M
    instructions (a 425x319 rendition), where a full-size decode to YCbCr,
    Pillow's (scalar) conversion to RGB and a BOX resize to 640x480 took
    26 + 25 + 46 M. Anything that still does not fit (PNG and WebP decode at
    full size; a JPEG over 8x max_px) is resized (BOX) to fit.
    """
    scale = draft_scale_within(image.size, max_px)
    if scale > 1:
        # Asking for exactly size // scale makes Pillow pick exactly `scale`.
        image.draft("RGB", (max(1, image.width // scale), max(1, image.height // scale)))
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImage(f"image data is corrupt: {exc}") from None
    rendition = image if image.mode == "RGB" else image.convert("RGB")
    if max(rendition.size) > max_px:
        rendition = rendition.resize(fit_within(rendition.size, max_px), Image.Resampling.BOX)
    return rendition


def thumbnail_of(image: Image.Image, max_px: int) -> Image.Image:
    """The decoded image scaled to fit max_px (RGB and YCbCr images keep their mode)."""
    thumbnail = image if image.mode in THUMBNAIL_MODES else image.convert("RGB")
    # Box (area averaging): after a draft decode the remaining downscale is
    # under 2x, where it is within a few percent of Lanczos (mean pixel error)
    # at ~30 % less CPU than bilinear.
    thumbnail.thumbnail((max_px, max_px), Image.Resampling.BOX)
    return thumbnail


def save_thumbnail(thumbnail: Image.Image, out: BinaryIO) -> None:
    """Encode as JPEG. Given a real file, Pillow encodes straight to its descriptor
    with the GIL released (into a BytesIO it holds the GIL throughout)."""
    thumbnail.save(out, format="JPEG", quality=THUMBNAIL_QUALITY)


# Temporary names are unique per process and thread, so no two writers share
# one (the token tells hosts sharing the directory apart).
_TEMP_TOKEN = uuid.uuid4().hex[:8]
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
# Directories this process has created or found: a write skips the mkdir.
_known_directories: set[str] = set()


def write_atomically(
    path: Path | str, content: bytes | memoryview | Callable[[BinaryIO], None]
) -> None:
    """Write bytes, or whatever `content(file)` writes; readers never see a
    half-written file, and a retry simply overwrites it.

    Straight to the descriptor: every system call made from Python hands the GIL
    over (to the event loop, usually waiting for it) and back, and a buffered
    file object adds three (fstat, isatty, lseek) per file.
    """
    directory, name = os.path.split(os.fspath(path))
    if directory not in _known_directories:
        os.makedirs(directory, exist_ok=True)
        _known_directories.add(directory)
    tmp_name = os.path.join(
        directory, f".{name}.{_TEMP_TOKEN}-{os.getpid()}-{threading.get_ident()}.tmp"
    )
    try:
        fd = os.open(tmp_name, _TEMP_FLAGS, 0o644)
    except FileNotFoundError:  # the directory was removed since: make it again
        os.makedirs(directory, exist_ok=True)
        fd = os.open(tmp_name, _TEMP_FLAGS, 0o644)
    try:
        try:
            if isinstance(content, bytes | memoryview):
                write_all(fd, content)
            else:
                # Unbuffered: what is written goes to the descriptor as written.
                with open(fd, "wb", buffering=0, closefd=False) as file:
                    content(file)
        finally:
            os.close(fd)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def relative_paths(execution_id: int, extension: str) -> tuple[str, str]:
    # A thousand executions per directory keeps directories small.
    shard = execution_id // 1000
    return f"originals/{shard}/{execution_id}.{extension}", f"thumbnails/{shard}/{execution_id}.jpg"


def save_execution_image(
    raw_image: RawImage,
    execution_id: int,
    image_dir: Path,
    limits: ImageLimits,
    clock: StepClock | None = None,
) -> StoredImage:
    """Decode, verify, and write original + thumbnail (blocking: run it in a thread)."""
    clock = clock or StepClock()
    data = decode_base64(raw_image.data_base64, limits.max_bytes)
    clock.lap(steps.FRAME)
    return save_image_bytes(data, raw_image.mime_type, execution_id, image_dir, limits, clock=clock)


def save_image_bytes(
    data: bytes,
    mime_type: str,
    execution_id: int,
    image_dir: Path,
    limits: ImageLimits,
    *,
    webp_max_px: int | None = None,
    clock: StepClock | None = None,
) -> StoredImage:
    """Verify the image and write original + thumbnail (+ a WebP rendition fitting
    `webp_max_px` when given), from one decode. Blocking: run it in a thread."""
    clock = clock or StepClock()
    if len(data) > limits.max_bytes:
        raise InvalidImage(
            f"image is {len(data)} bytes, over the limit of {limits.max_bytes} "
            "(ETL_MAX_IMAGE_BYTES)"
        )
    image = open_image(data, mime_type, limits.max_pixels)
    assert image.format is not None  # open_image checked it
    width, height = image.size  # before the draft decode shrinks it
    image_path, thumbnail_path = relative_paths(execution_id, FORMATS[image.format][1])
    root = os.fspath(image_dir)
    webp_path = None
    if webp_max_px is None:
        # The original is stored as received; decoding it for the thumbnail verifies it.
        decoded = decode_for_thumbnail(image, limits.thumbnail_px)
        clock.lap(steps.DECODE)
    else:
        # One decode serves the rendition and the thumbnail.
        decoded = decode_for_rendition(image, webp_max_px)
        clock.lap(steps.DECODE)
        webp_path = f"renditions/{execution_id // 1000}/{execution_id}.webp"
        # libwebp encodes into memory with the GIL released; one write follows.
        webp = io.BytesIO()
        decoded.save(webp, format="WEBP", quality=WEBP_QUALITY, method=WEBP_METHOD)
        write_atomically(os.path.join(root, webp_path), webp.getbuffer())
        clock.lap(steps.WEBP)
    # The rendition is written: the thumbnail may resize it in place.
    thumbnail = thumbnail_of(decoded, limits.thumbnail_px)
    write_atomically(os.path.join(root, thumbnail_path), lambda out: save_thumbnail(thumbnail, out))
    clock.lap(steps.THUMBNAIL)
    write_atomically(os.path.join(root, image_path), data)
    clock.lap(steps.ORIGINAL)
    return StoredImage(image_path, thumbnail_path, width, height, webp_path)
