"""A PNG writer for tests: any colour type, bit depth and row filter, rows streamed to the file
(so a huge image is written in bounded memory). Filters as in the PNG spec, section 9."""

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def pack_row(samples, depth):
    """One row of samples (uint values < 2**depth) as bytes, most significant bits first."""
    if depth == 8:
        return samples.astype(np.uint8).tobytes()
    bits = ((samples[:, None] >> np.arange(depth - 1, -1, -1)) & 1).astype(np.uint8).ravel()
    return np.packbits(bits).tobytes()


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def filter_row(row, prior, kind, bpp):
    """The filtered bytes of ``row`` (uint8) given the unfiltered ``prior`` row."""
    if kind == 0:
        return b"\x00" + row.tobytes()
    x = row.astype(np.int32)
    up = prior.astype(np.int32)
    left = np.concatenate([np.zeros(bpp, np.int32), x[:-bpp]])
    upleft = np.concatenate([np.zeros(bpp, np.int32), up[:-bpp]])
    predictor = {0: 0, 1: left, 2: up, 3: (left + up) // 2, 4: paeth(left, up, upleft)}[kind]
    return bytes([kind]) + ((x - predictor) % 256).astype(np.uint8).tobytes()


def write_png(
    path,
    width,
    height,
    rows,
    *,
    colour,
    depth=8,
    filters=(0,),
    palette=None,
    transparency=None,
    interlace=0,
    exif=None,
    level=6,
):
    """Write a PNG whose row ``y`` has the samples ``rows(y)`` (a flat array); the filter of
    row ``y`` is ``filters[y % len(filters)]``. Returns the path."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    bpp = max(1, channels * depth // 8)
    compress = zlib.compressobj(level)
    with open(path, "wb") as f:
        f.write(SIGNATURE)
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0,
                                           interlace)))  # fmt: skip
        if exif is not None:
            f.write(chunk(b"eXIf", exif))
        if palette is not None:
            f.write(chunk(b"PLTE", np.asarray(palette, np.uint8).tobytes()))
        if transparency is not None:
            f.write(chunk(b"tRNS", np.asarray(transparency, np.uint8).tobytes()))
        prior = None
        for y in range(height):
            row = np.frombuffer(pack_row(np.asarray(rows(y)), depth), np.uint8)
            prior = np.zeros_like(row) if prior is None else prior
            data = compress.compress(filter_row(row, prior, filters[y % len(filters)], bpp))
            if data:
                f.write(chunk(b"IDAT", data))
            prior = row
        f.write(chunk(b"IDAT", compress.flush()))
        f.write(chunk(b"IEND", b""))
    return path
