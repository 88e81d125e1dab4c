"""Decode an enormous PNG in bounded memory, straight to a box-filtered reduction.

A 20000 x 20000 PNG is 1.6 GB as Pillow holds it (4 bytes a pixel), before any conversion; a
caption model looks at it through a 64-pixel square. :func:`read_reduced` streams the file
instead: chunk by chunk, the image data is inflated (``zlib.decompressobj``, never more than a
strip at a time), the rows are unfiltered a strip at a time, converted to RGB (palettes, bit
depths under 8, transparency over white, as :func:`rnnkit.caption.images.load_image` does for a
picture decoded whole) and summed into the bins of a ``factor_x`` x ``factor_y`` box filter. Memory
is a few strips of rows, whatever the height; a row itself must fit (:func:`check_row`).

**The row filters** (None, Sub, Up, Average, Paeth; PNG spec section 9) chain every byte to its
left neighbour, which NumPy cannot vectorise for Average and Paeth. They are undone by Pillow's C
decoder on a *carrier*: each strip is re-wrapped as a small PNG whose pixels are 8-bit samples with
the same bytes per pixel (grey for 1, grey+alpha for 2, RGB for 3, RGBA for 4), so the filters
act on exactly the same bytes and the decoded pixels *are* the unfiltered rows. The strip starts
with the previous strip's last unfiltered row (filter None), the "prior row" of its first row.
The carrier's data is stored, not compressed (``zlib.compress(level=0)``), so this costs a copy.

Handled: non-interlaced PNGs of 8 bits or fewer per sample, every colour type. Interlaced
(Adam7) and 16-bit PNGs are not: :func:`streamable` says so and the caller decodes them whole.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from rnnkit.errors import DataError

SIGNATURE = b"\x89PNG\r\n\x1a\n"
READ_BYTES = 1 << 20  # compressed bytes read from the file at a time
STRIP_BYTES = 8 << 20  # raw row bytes unfiltered and converted at a time
CARRIERS = {1: 0, 2: 4, 3: 2, 4: 6}  # bytes per pixel -> colour type of 8-bit samples
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel
ORIENTATION = 0x0112  # the EXIF tag


@dataclass(frozen=True)
class Header:
    """What the IHDR chunk says, and the other chunks the pixels need."""

    width: int
    height: int
    bit_depth: int
    colour_type: int
    interlaced: bool
    palette: bytes = b""  # PLTE: RGB triples
    transparency: bytes | None = None  # tRNS of a palette: alpha per entry
    exif: bytes | None = None  # eXIf (orientation)

    @property
    def bits_per_pixel(self) -> int:
        return CHANNELS[self.colour_type] * self.bit_depth

    @property
    def stride(self) -> int:
        """Bytes of one unfiltered row."""
        return (self.width * self.bits_per_pixel + 7) // 8

    @property
    def streamable(self) -> bool:
        return not self.interlaced and self.bit_depth <= 8


def _chunks(handle: BinaryIO, path: object) -> Iterator[tuple[bytes, int]]:
    """``(type, length)`` of each chunk, the handle left at its data; the caller reads it or not."""
    if handle.read(8) != SIGNATURE:
        raise DataError(f"{path} is not a PNG file")
    while True:
        head = handle.read(8)
        if len(head) < 8:
            raise DataError(f"{path} is damaged or truncated (no IEND chunk); replace the file")
        length, kind = struct.unpack(">I4s", head)
        start = handle.tell()
        yield kind, length
        handle.seek(start + length + 4)  # past the data and the CRC
        if kind == b"IEND":
            return


def read_header(path: object) -> Header:
    """The header of the PNG ``path`` and its palette, transparency and EXIF chunks (which
    precede the image data; anything after it is not read)."""
    fields: dict = {}
    with open(path, "rb") as handle:  # type: ignore[arg-type]
        for kind, length in _chunks(handle, path):
            if kind == b"IHDR":
                if length != 13:
                    raise DataError(f"{path} is damaged (bad IHDR chunk); replace the file")
                w, h, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", handle.read(13))
                if colour not in CHANNELS or depth not in (1, 2, 4, 8, 16):
                    raise DataError(f"{path} is damaged (colour type {colour}, depth {depth})")
                fields.update(width=w, height=h, bit_depth=depth, colour_type=colour,
                              interlaced=interlace == 1)  # fmt: skip
            elif kind == b"PLTE":
                fields["palette"] = handle.read(min(length, 768))
            elif kind == b"tRNS" and fields.get("colour_type") == 3:
                fields["transparency"] = handle.read(min(length, 256))
            elif kind == b"eXIf":
                fields["exif"] = handle.read(min(length, 1 << 16))
            elif kind in (b"IDAT", b"IEND"):
                break
    if "width" not in fields:
        raise DataError(f"{path} is damaged (no IHDR chunk); replace the file")
    return Header(**fields)


def orientation(header: Header) -> int:
    """The EXIF orientation (1: upright) the PNG's eXIf chunk gives."""
    if not header.exif:
        return 1
    from PIL import Image

    exif = Image.Exif()
    try:
        exif.load(header.exif)
    except (SyntaxError, ValueError, struct.error):
        return 1
    value = exif.get(ORIENTATION, 1)
    return value if isinstance(value, int) else 1


def _inflated(handle: BinaryIO, path: object) -> Iterator[bytes]:
    """The decompressed image data in pieces of at most :data:`STRIP_BYTES`."""
    inflate = zlib.decompressobj()
    for kind, length in _chunks(handle, path):
        if kind != b"IDAT":
            continue
        left = length
        while left:
            data = handle.read(min(left, READ_BYTES))
            if not data:
                raise DataError(f"{path} is damaged or truncated (short IDAT); replace the file")
            left -= len(data)
            while True:  # until this input is used and nothing is pending
                try:
                    piece = inflate.decompress(data, STRIP_BYTES)
                except zlib.error as exc:
                    raise DataError(f"{path} is damaged ({exc}); replace the file") from None
                data = inflate.unconsumed_tail
                if piece:
                    yield piece
                if not data and len(piece) < STRIP_BYTES:
                    break


def _rows(handle: BinaryIO, header: Header, path: object) -> Iterator[bytes]:
    """Strips of filtered rows (filter byte + stride bytes each), ``height`` rows in all."""
    row = header.stride + 1
    per_strip = max(1, STRIP_BYTES // row) * row
    buffer = bytearray()
    left = header.height * row
    for piece in _inflated(handle, path):
        buffer += piece
        while len(buffer) >= min(per_strip, left) and left:
            take = min(per_strip, left)
            yield bytes(buffer[:take])
            del buffer[:take]
            left -= take
        if not left:
            return
    raise DataError(
        f"{path} is damaged or truncated ({left // row} of {header.height} rows missing); "
        "replace the file"
    )


def _carrier_png(width: int, colour_type: int, rows: int, data: bytes) -> bytes:
    """A PNG of ``rows`` rows of 8-bit samples whose (filtered) image data is ``data``."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", width, rows, 8, colour_type, 0, 0, 0)
    idat = zlib.compress(data, 0)
    return SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _unfiltered(strips: Iterator[bytes], header: Header) -> Iterator[np.ndarray]:
    """Each strip's rows with their filters undone, ``(n, stride)`` uint8 (see the module
    docstring: Pillow unfilters a carrier image with the same bytes per pixel)."""
    from PIL import Image

    bpp = max(1, header.bits_per_pixel // 8)
    colour, width = CARRIERS[bpp], header.stride // bpp
    prior: bytes | None = None
    for data in strips:
        seed = b"" if prior is None else b"\x00" + prior
        rows = (len(seed) + len(data)) // (header.stride + 1)
        with Image.open(io.BytesIO(_carrier_png(width, colour, rows, seed + data))) as carrier:
            raw = np.asarray(carrier, dtype=np.uint8).reshape(rows, header.stride)
        raw = raw[1:] if seed else raw
        prior = raw[-1].tobytes()
        yield raw


def _samples(raw: np.ndarray, header: Header) -> np.ndarray:
    """Unpacked samples ``(n, width * channels)`` of rows ``raw`` with ``bit_depth`` <= 8."""
    depth = header.bit_depth
    count = header.width * CHANNELS[header.colour_type]
    if depth == 8:
        return raw[:, :count]
    bits = np.unpackbits(raw, axis=1)  # (n, stride * 8), most significant bit first
    bits = bits[:, : count * depth].reshape(len(raw), count, depth)
    weights = (1 << np.arange(depth - 1, -1, -1)).astype(np.uint8)
    return (bits * weights).sum(axis=2, dtype=np.uint8)


def _rgb(raw: np.ndarray, header: Header) -> np.ndarray:
    """Rows ``raw`` as colours ``(n, width, 3)`` (or ``(n, width, 1)`` for grey) in 0..255: uint8
    where opaque, float32 where transparency is laid over white, the way the whole-image path
    does it (Pillow keeps a grey or RGB image's tRNS colour opaque)."""
    samples = _samples(raw, header)
    n, width, depth = len(raw), header.width, header.bit_depth
    colour = header.colour_type
    if colour == 3:
        table = np.zeros((256, 4), np.uint8)
        table[:, 3] = 255
        palette = np.frombuffer(header.palette, np.uint8)
        entries = len(palette) // 3
        table[:entries, :3] = palette[: entries * 3].reshape(entries, 3)
        if header.transparency is None:
            return table[:, :3][samples.reshape(n, width)]  # (n, W, 3)
        alpha = np.frombuffer(header.transparency, np.uint8)
        table[: len(alpha), 3] = alpha
        return _over_white(table[samples.reshape(n, width)])
    values = samples.reshape(n, width, CHANNELS[colour])
    if depth < 8:  # greyscale of 1, 2 or 4 bits, scaled to 0..255 as Pillow does
        values = values * np.uint8(255 // ((1 << depth) - 1))
    if colour == 4:
        grey = np.repeat(values[..., :1], 3, axis=2)
        return _over_white(np.concatenate([grey, values[..., 1:]], axis=2))
    return _over_white(values) if colour == 6 else values


def _over_white(rgba: np.ndarray) -> np.ndarray:
    """``(..., 4)`` uint8 RGBA laid over white: ``(..., 3)`` float32."""
    alpha = rgba[..., 3:].astype(np.float32) / 255.0
    return rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)


def check_row(header: Header, memory: int, path: object) -> None:
    """Refuse a PNG whose single row (as float RGB) would not fit in ``memory`` bytes."""
    row_bytes = header.width * 24 + header.stride
    if row_bytes * 4 > memory:
        raise DataError(
            f"{path} is {header.width:,} pixels wide: even one row of it needs more memory than "
            "this machine allows for decoding; downscale it first"
        )


def read_reduced(path: object, factor_x: int, factor_y: int) -> np.ndarray:
    """The PNG at ``path`` reduced by a box filter of ``factor_x`` x ``factor_y`` pixels:
    ``(ceil(height / factor_y), ceil(width / factor_x), 3)`` uint8 RGB (edge boxes average the
    pixels they have, as ``PIL.Image.reduce`` does). Not rotated by its EXIF orientation.

    Raises:
        DataError: not a streamable PNG (:attr:`Header.streamable`), or damaged.
    """
    header = read_header(path)
    if not header.streamable:
        raise DataError(f"{path}: interlaced or 16-bit PNGs are decoded whole, not streamed")
    if header.width == 0 or header.height == 0:
        raise DataError(f"{path} is a zero-size image ({header.width}x{header.height})")
    out_w = -(-header.width // factor_x)
    out_h = -(-header.height // factor_y)
    starts = np.arange(0, header.width, factor_x)  # first column of each box
    widths = np.minimum(starts + factor_x, header.width) - starts  # (out_w,)
    sums = np.zeros((out_h, out_w, 3), np.float64)
    heights = np.zeros(out_h, np.float64)
    y = 0
    with open(path, "rb") as handle:  # type: ignore[arg-type]
        for raw in _unfiltered(_rows(handle, header, path), header):
            # Convert a few rows at a time: the float copies are 16 bytes a pixel.
            step = max(1, STRIP_BYTES // (header.width * 16))
            for first in range(0, len(raw), step):
                rgb = _rgb(raw[first : first + step], header)  # (n, W, 3 or 1)
                done = 0
                while done < len(rgb):  # the rows of each output row in turn
                    out_row = (y + done) // factor_y
                    until = min(len(rgb), (out_row + 1) * factor_y - y)
                    rows = rgb[done:until].sum(axis=0, dtype=np.float64)  # (W, 3 or 1)
                    sums[out_row] += np.add.reduceat(rows, starts, axis=0)
                    heights[out_row] += until - done
                    done = until
                y += len(rgb)
    mean = sums / (heights[:, None, None] * widths[None, :, None])
    return np.floor(mean + 0.5).clip(0, 255).astype(np.uint8)
