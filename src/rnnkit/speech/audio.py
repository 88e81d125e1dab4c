"""Reading audio: any file soundfile (libsndfile) reads, at any rate, bit depth and channel count,
as one mono float32 signal at the model's rate; long files in bounded memory, block by block.

WAV (any PCM or float subtype), FLAC, OGG/Vorbis and the other formats of libsndfile are read by
``soundfile``; channels are averaged (downmix) and the rate is converted by :func:`resample`, a
windowed-sinc low-pass interpolation written here (Smith, "Digital Audio Resampling").

Example::

    wave = read_audio("a.flac", sample_rate=16000)       # (N,) float32 in [-1, 1]
    for start, block in read_blocks("long.wav", sample_rate=16000, seconds=30.0):
        ...                                              # start: first sample of the block
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rnnkit.errors import DataError

ZEROS = 16  # zero crossings of the sinc on each side of the resampling kernel
ROLLOFF = 0.94  # cutoff as a fraction of the lower Nyquist frequency (room for the transition)


def _open(path: str | os.PathLike) -> object:
    """A soundfile handle on ``path``, or a DataError that names the problem."""
    import soundfile

    p = Path(path)
    if p.is_dir():
        raise DataError(f"{p} is a directory; give an audio file (WAV, FLAC, OGG)")
    if not p.exists():
        raise DataError(f"no such audio file: {p}")
    if p.stat().st_size == 0:
        raise DataError(f"{p} is empty (0 bytes); give a non-empty audio file")
    try:
        handle = soundfile.SoundFile(str(p))
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as exc:
        reason = str(exc).split(":")[-1].strip() or type(exc).__name__
        raise DataError(
            f"cannot read {p} as audio ({reason}); give a WAV, FLAC or OGG file"
        ) from None
    if handle.frames == 0:
        handle.close()
        raise DataError(f"{p} holds no audio samples (zero-length); give a recording")
    return handle


def audio_info(path: str | os.PathLike) -> tuple[int, int, float]:
    """``(sample rate, channels, seconds)`` of an audio file."""
    with _open(path) as handle:
        return handle.samplerate, handle.channels, handle.frames / handle.samplerate


def read_audio(path: str | os.PathLike, *, sample_rate: int) -> Tensor:
    """The whole file as a mono float32 signal (N,) at ``sample_rate``."""
    with _open(path) as handle:
        data = handle.read(dtype="float32", always_2d=True)  # (N, channels)
        rate = handle.samplerate
    _check_finite(data, path)
    return resample(torch.from_numpy(data.mean(axis=1)), rate, sample_rate)


def read_blocks(
    path: str | os.PathLike, *, sample_rate: int, seconds: float
) -> Iterator[tuple[int, Tensor]]:
    """The file in consecutive blocks of about ``seconds`` (mono, at ``sample_rate``), with the
    index of each block's first sample; only one block (plus a little context) is in memory.

    Each block is resampled with ``ZEROS`` input samples of context on both sides, so the joined
    blocks equal :func:`read_audio` of the whole file up to rounding.
    """
    with _open(path) as handle:
        rate = handle.samplerate
        g = math.gcd(rate, sample_rate)
        # Block length: a whole number of resampling periods, so block edges fall on samples.
        period = rate // g
        block = max(period, int(seconds * rate) // period * period)
        context = period * math.ceil(_half_width(rate, sample_rate) / period + 1)
        start = 0
        while start < handle.frames:
            lo = max(0, start - context)
            handle.seek(lo)
            stop = min(handle.frames, start + block + context)
            data = handle.read(stop - lo, dtype="float32", always_2d=True).mean(axis=1)
            _check_finite(data, path)
            out = resample(torch.from_numpy(np.ascontiguousarray(data)), rate, sample_rate)
            first = (start - lo) * sample_rate // rate
            count = (min(block, handle.frames - start) * sample_rate + rate - 1) // rate
            yield start * sample_rate // rate, out[first : first + count]
            start += block


def _check_finite(data: np.ndarray, path: str | os.PathLike) -> None:
    """A float WAV can hold NaN or infinite samples, which would silently become an empty
    transcript (or a NaN loss): refuse them, naming the file."""
    if not np.isfinite(data).all():
        raise DataError(
            f"{path} holds NaN or infinite samples (a damaged float recording); re-export it"
        )


def _half_width(orig: int, new: int) -> float:
    """Half the kernel's length in input samples."""
    cutoff = 0.5 * min(1.0, new / orig) * ROLLOFF  # cycles per input sample
    return ZEROS / (2 * cutoff)


def resample(wave: Tensor, orig: int, new: int) -> Tensor:
    """``wave`` (N,) sampled at ``orig`` Hz, resampled to ``new`` Hz (windowed-sinc low-pass).

    Output sample j sits at input position c = j * orig / new and is
    ``sum_i x[i] h(c - i)`` with ``h(d) = 2 f sinc(2 f d) hann(d / half_width)``, f the cutoff in
    cycles per input sample. The positions repeat every ``new / gcd`` outputs, so the kernel has
    one row per phase and the whole product is one strided ``conv1d``.
    """
    if orig == new:
        return wave
    if orig <= 0 or new <= 0:
        raise ValueError(f"sample rates must be positive, got {orig} and {new}")
    g = math.gcd(orig, new)
    o, n = orig // g, new // g  # every n outputs advance o inputs
    cutoff = 0.5 * min(1.0, n / o) * ROLLOFF
    half = _half_width(orig, new)
    reach = math.ceil(half)
    # Phase p outputs sit at c = m * o + p * o / n; taps r in [-reach, o + reach] around m * o.
    r = torch.arange(-reach, o + reach + 1, dtype=torch.float64)  # (K,)
    c = torch.arange(n, dtype=torch.float64).unsqueeze(1) * o / n  # (n, 1)
    d = c - r  # (n, K)
    window = torch.where(d.abs() < half, 0.5 + 0.5 * torch.cos(math.pi * d / half), 0.0)
    kernel = (2 * cutoff * torch.sinc(2 * cutoff * d) * window).to(wave.dtype)  # (n, K)
    length = wave.shape[0]
    outputs = math.ceil(length * n / o)
    blocks = math.ceil(outputs / n)
    padded = torch.nn.functional.pad(wave, (reach, blocks * o + 2 * reach + 1 - length))
    # conv1d correlates: phase p, block m reads padded[m * o + k] = x[m * o + r] (k = r + reach).
    out = torch.nn.functional.conv1d(padded.view(1, 1, -1), kernel.unsqueeze(1), stride=o)
    out = out[0, :, :blocks].transpose(0, 1).reshape(-1)  # (blocks * n,): interleave the phases
    return out[:outputs].contiguous()
