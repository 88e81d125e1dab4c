"""Reading the user's pictures with Pillow: any size and mode, EXIF orientation, bounded memory.

:func:`load_image` turns a file into the ``(size, size, 3)`` uint8 RGB array the encoders take:

* **modes**: RGB as is; greyscale and palette images become RGB; transparency (RGBA, LA, a
  palette's transparent colour) is laid over white; 16-bit and float greyscale are scaled to 8 bits.
* **orientation**: the EXIF orientation tag is applied, so a phone photo stands the right way up.
* **enormous images** are downscaled without decoding them whole where the format allows it:
  JPEG decodes at 1/2, 1/4 or 1/8 scale (``Image.draft``), so a 100-megapixel photo costs the memory
  of a ~1.5-megapixel one. Formats that must be decoded whole are read up to Pillow's
  decompression-bomb limit (about 179 million pixels) and refused above it, with one line.
* the picture is then resized to a square ``size`` x ``size`` (the aspect ratio is not kept: the
  captioning models see a fixed grid).

Every unusable file (missing, a directory, empty, not an image, truncated or corrupt, zero-size)
raises :class:`rnnkit.errors.DataError` with one line naming the file. Torch-free.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from rnnkit.errors import DataError

# Decode JPEGs at the smallest scale that still leaves this many times the target size.
DRAFT_MARGIN = 2


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
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty (0 bytes); give an image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.width == 0 or image.height == 0:
                    raise DataError(f"{path} is a zero-size image ({image.width}x{image.height})")
                if image.format == "JPEG":
                    target = DRAFT_MARGIN * size
                    image.draft("RGB", (target, target))  # decode at 1/2..1/8 scale
                image.load()
                image = ImageOps.exif_transpose(image)
                return _to_rgb(image)
    except UnidentifiedImageError:
        raise DataError(f"{path} is not an image Pillow can read; give a PNG, JPEG, ...") from None
    except Image.DecompressionBombError as exc:
        raise DataError(
            f"{path} is too large to decode safely ({exc}); save it as a JPEG or downscale it"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path} is damaged or truncated ({exc}); replace the file") from None


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
