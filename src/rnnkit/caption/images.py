"""Reading the user's pictures with Pillow: any size and mode, EXIF orientation, bounded memory.

:func:`load_image` turns a file into the ``(size, size, 3)`` uint8 RGB array the encoders take:

* **modes**: RGB as is; greyscale and palette images become RGB; transparency (RGBA, LA, a
  palette's transparent colour) is laid over white; 16-bit and float greyscale are scaled to 8 bits.
* **orientation**: the EXIF orientation tag is applied, so a phone photo stands the right way up.
* **enormous images** are downscaled without decoding them whole where the format allows it:
  JPEG decodes at 1/2, 1/4 or 1/8 scale (``Image.draft``), so a 100-megapixel photo costs the memory
  of a ~1.5-megapixel one; a PNG above :data:`STREAM_PIXELS` (non-interlaced, 8 bits or fewer per
  sample) is streamed row by row into a box-filtered reduction (:mod:`rnnkit.caption.png`), so
  its height costs nothing. Any other picture (other formats, interlaced or 16-bit PNGs) is
  decoded whole by Pillow up to a cap computed from this machine's memory
  (:func:`rnnkit.limits.image_pixel_cap`) and refused above it, with one line naming its size and
  the cap.
* the picture is then resized to a square ``size`` x ``size`` (the aspect ratio is not kept: the
  captioning models see a fixed grid).

Every unusable file (missing, a directory, empty, not an image, truncated or corrupt, zero-size)
raises :class:`rnnkit.errors.DataError` with one line naming the file. Torch-free.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from rnnkit import limits
from rnnkit.caption import png
from rnnkit.errors import DataError

# Decode JPEGs (and reduce streamed PNGs) to the smallest size that still leaves this many times
# the target size.
DRAFT_MARGIN = 2
STREAM_PIXELS = 1 << 24  # PNGs with more pixels than this (64 MiB as Pillow holds them) stream
# EXIF orientation -> the PIL transpose that stands the picture upright (as ImageOps.exif_transpose)
UPRIGHT = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE",
           6: "ROTATE_270", 7: "TRANSVERSE", 8: "ROTATE_90"}  # fmt: skip


def open_reduced(path: str | os.PathLike, size: int):  # noqa: ANN201 (a PIL image)
    """The picture at ``path`` decoded (reduced where the format allows), upright, in RGB.

    Its sides are at least ``DRAFT_MARGIN * size`` where the original's are; the caller resizes.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise DataError(f"no such image file: {path}")
    if path.is_dir():
        raise DataError(f"{path} is a directory; give an image file")
    if not path.is_file():  # a FIFO would hang, a device never end
        raise DataError(f"{path} is not a regular file; give an image file")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty (0 bytes); give an image file")
    try:
        header = _png_header(path)
        whole = min(STREAM_PIXELS, limits.image_pixel_cap())
        if header is not None and header.streamable and header.width * header.height > whole:
            return _streamed(path, header, size)
        with _memory_cap_instead_of_pillows(), Image.open(path) as image:
            if image.width == 0 or image.height == 0:
                raise DataError(f"{path} is a zero-size image ({image.width}x{image.height})")
            if image.format == "JPEG":
                target = DRAFT_MARGIN * size
                image.draft("RGB", (target, target))  # decode at 1/2..1/8 scale
            _check_whole(path, image, header)
            image.load()
            image = ImageOps.exif_transpose(image)
            return _to_rgb(image)
    except DataError:
        raise
    except UnidentifiedImageError:
        raise DataError(f"{path} is not an image Pillow can read; give a PNG, JPEG, ...") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path} is damaged or truncated ({exc}); replace the file") from None


def _png_header(path: Path) -> png.Header | None:
    """The header of a PNG file, or None for another format."""
    with open(path, "rb") as handle:
        if handle.read(len(png.SIGNATURE)) != png.SIGNATURE:
            return None
    return png.read_header(path)


def _streamed(path: Path, header: png.Header, size: int):  # noqa: ANN202 (a PIL image)
    """A big PNG streamed into its reduction (sides >= ``DRAFT_MARGIN * size``), upright."""
    from PIL import Image

    png.check_row(header, limits.image_memory(), path)
    target = DRAFT_MARGIN * size
    factor_x, factor_y = max(1, header.width // target), max(1, header.height // target)
    image = Image.fromarray(png.read_reduced(path, factor_x, factor_y))
    turn = UPRIGHT.get(png.orientation(header))
    return image if turn is None else image.transpose(getattr(Image.Transpose, turn))


# Pillow's pixel limit is one global: pictures opened from several threads (the playground)
# take turns, so one thread never restores the limit under another's open, nor leaves it off.
_PILLOW_LIMIT = threading.Lock()


@contextmanager
def _memory_cap_instead_of_pillows() -> Iterator[None]:
    """Pillow's decompression-bomb check off while a picture is opened: :func:`_check_whole`
    applies this machine's cap instead (to the size a JPEG is drafted to, not its full size)."""
    from PIL import Image

    with _PILLOW_LIMIT:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _check_whole(path: Path, image, header: png.Header | None) -> None:  # noqa: ANN001
    """Refuse a picture that must be decoded whole and is larger than this machine allows."""
    cap = limits.image_pixel_cap()
    width, height = image.size
    if width * height <= cap:
        return
    if header is not None:
        kind = "an interlaced PNG" if header.interlaced else "a 16-bit PNG"
    else:
        kind = f"a {image.format or 'picture of this format'}"
    raise DataError(
        f"{path} is {width:,}x{height:,} pixels ({width * height / 1e6:,.0f} megapixels); {kind} "
        f"is decoded whole, and this machine's memory allows {cap / 1e6:,.0f} megapixels; save "
        "it as JPEG or as a non-interlaced 8-bit PNG (read at reduced scale), or downscale it"
    )


def _to_rgb(image):  # noqa: ANN001, ANN202 (PIL images)
    """``image`` as RGB; transparency over white, high-bit-depth greyscale scaled to 8 bits."""
    from PIL import Image

    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode != "F" and values.max() > 255 else max(values.max(), 1.0)
        if image.mode == "F":
            top = max(float(values.max()), 1e-12)
        grey = np.clip(values / top * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def load_image(path: str | os.PathLike, size: int) -> np.ndarray:
    """The picture at ``path`` as a ``(size, size, 3)`` uint8 RGB array (see the module doc)."""
    from PIL import Image

    image = open_reduced(path, size)
    if image.size != (size, size):
        # reducing_gap: shrink by whole factors first (fast, bounded), then resample exactly.
        image = image.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
    return np.asarray(image, dtype=np.uint8)
