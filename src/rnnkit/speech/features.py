"""The front end: log-mel filterbank features, normalisation and SpecAugment.

Log-mel features (Davis and Mermelstein 1980, without the DCT): frames of ``n_fft`` samples every
``hop`` samples, a periodic Hann window, the power spectrum ``|STFT|^2`` (``torch.stft``), summed
by triangular filters equally spaced on the mel scale ``mel(f) = 2595 log10(1 + f / 700)`` (the
HTK formula; filters not area-normalised), then ``log(energy + floor)``. The tests check every
step against a NumPy transcription of the same formulas.

SpecAugment (Park et al. 2019): in training, a few random bands of mel channels and a few random
stretches of frames are set to zero (the mean, after normalisation).

Example::

    config = FeatureConfig()                       # 16 kHz, 25 ms windows every 10 ms, 40 mels
    feats = log_mel(wave, config)                  # wave (N,) -> (frames, 40)
    feats = normalize(feats)                       # zero mean, unit variance per channel
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
from torch import Tensor

from rnnkit.errors import ConfigError, DataError


@dataclass
class FeatureConfig:
    """How audio becomes features; stored in a run's ``config.json`` under ``"features"``."""

    sample_rate: int = 16000  # Hz; audio at other rates is resampled to this
    n_fft: int = 400  # window and FFT length in samples (25 ms)
    hop: int = 160  # samples between frames (10 ms)
    n_mels: int = 40  # mel channels
    f_min: float = 20.0  # lowest filter edge (Hz)
    f_max: float = 7600.0  # highest filter edge (Hz), below the Nyquist frequency
    floor: float = 1e-6  # added before the log (silence floor)

    def __post_init__(self) -> None:
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ConfigError(
                f"need 0 <= f_min < f_max <= sample_rate / 2, got {self.f_min}, {self.f_max}, "
                f"{self.sample_rate}"
            )
        if self.hop < 1 or self.n_fft < self.hop or self.n_mels < 1:
            raise ConfigError(f"need n_fft >= hop >= 1 and n_mels >= 1, got {self}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def frame_seconds(self) -> float:
        """Seconds between frames."""
        return self.hop / self.sample_rate

    def frames(self, samples: int) -> int:
        """Frames of a signal of ``samples`` samples (0 if shorter than one window)."""
        return 0 if samples < self.n_fft else 1 + (samples - self.n_fft) // self.hop


def hz_to_mel(f: Tensor) -> Tensor:
    return 2595.0 * torch.log10(1.0 + f / 700.0)


def mel_to_hz(m: Tensor) -> Tensor:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(config: FeatureConfig) -> Tensor:
    """(n_fft // 2 + 1, n_mels): filter j rises linearly from edge j to edge j+1 and falls to
    edge j+2, where the n_mels + 2 edges are equally spaced in mel from f_min to f_max."""
    c = config
    low, high = hz_to_mel(torch.tensor([c.f_min, c.f_max], dtype=torch.float64)).tolist()
    edges = mel_to_hz(torch.linspace(low, high, c.n_mels + 2, dtype=torch.float64))
    freqs = torch.arange(c.n_fft // 2 + 1, dtype=torch.float64) * c.sample_rate / c.n_fft
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]  # (n_mels,) each
    rising = (freqs.unsqueeze(1) - lower) / (centre - lower)  # (F, n_mels)
    falling = (upper - freqs.unsqueeze(1)) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0)  # float64


def log_mel(wave: Tensor, config: FeatureConfig, *, bank: Tensor | None = None) -> Tensor:
    """Log-mel features (frames, n_mels) of a mono signal ``wave`` (N,) at the config's rate.

    Raises:
        DataError: the signal is shorter than one window.
    """
    c = config
    if wave.dim() != 1:
        raise ValueError(f"wave must be 1-D (mono samples), got shape {tuple(wave.shape)}")
    if wave.shape[0] < c.n_fft:
        raise DataError(
            f"the audio is {wave.shape[0] / c.sample_rate * 1000:.1f} ms long, shorter than one "
            f"feature frame ({c.n_fft / c.sample_rate * 1000:.0f} ms); give a longer recording"
        )
    bank = (mel_filterbank(c) if bank is None else bank).to(wave.dtype)
    window = torch.hann_window(c.n_fft, periodic=True, dtype=wave.dtype)
    spec = torch.stft(wave, c.n_fft, hop_length=c.hop, window=window, center=False,
                      return_complex=True)  # fmt: skip  # (F, frames)
    power = spec.real.square() + spec.imag.square()
    return torch.log(power.transpose(0, 1) @ bank + c.floor)  # (frames, n_mels)


def normalize(feats: Tensor, mean: Tensor | None = None, std: Tensor | None = None) -> Tensor:
    """Zero mean, unit variance per channel: with the utterance's own statistics, or with the
    given (global, training-set) ``mean`` and ``std`` (n_mels,)."""
    if mean is None or std is None:
        mean, std = feats.mean(0), feats.std(0, unbiased=False)
    return (feats - mean) / (std + 1e-5)


def warp_matrix(config: FeatureConfig, alpha: float) -> Tensor:
    """(n_mels, n_mels) matrix W such that ``feats @ W.T`` approximates the features of the same
    speech with every frequency scaled by ``alpha`` (vocal tract length perturbation, Jaitly and
    Hinton 2013, done on the mel channels): output channel j reads the input at the (fractional)
    channel whose centre frequency is centre_j / alpha, by linear interpolation."""
    c = config
    low, high = hz_to_mel(torch.tensor([c.f_min, c.f_max], dtype=torch.float64)).tolist()
    step = (high - low) / (c.n_mels + 1)
    centres = low + step * torch.arange(1, c.n_mels + 1, dtype=torch.float64)  # mel
    source = (hz_to_mel(mel_to_hz(centres) / alpha) - low) / step - 1  # fractional channel
    source = source.clamp(0, c.n_mels - 1)
    lower = source.floor().long().clamp(max=c.n_mels - 2) if c.n_mels > 1 else source.long()
    frac = source - lower
    W = torch.zeros(c.n_mels, c.n_mels, dtype=torch.float64)
    rows = torch.arange(c.n_mels)
    W[rows, lower] = 1 - frac
    if c.n_mels > 1:
        W[rows, lower + 1] += frac
    return W.float()


def stretch(feats: Tensor, factor: float) -> Tensor:
    """``feats`` (frames, channels) played ``factor`` times as fast (tempo perturbation, as Ko
    et al. 2015 do on the waveform, here on the frames): ``round(frames / factor)`` output
    frames, frame i read at the (fractional) input frame ``i * factor`` by linear interpolation
    between its two neighbours."""
    frames = feats.shape[0]
    out_frames = max(1, round(frames / factor))
    position = (torch.arange(out_frames, dtype=torch.float64) * factor).clamp(max=frames - 1)
    lower = position.floor().long().clamp(max=max(frames - 2, 0))
    frac = (position - lower).to(feats.dtype).unsqueeze(1)  # (out_frames, 1)
    upper = (lower + 1).clamp(max=frames - 1)
    return feats[lower] * (1 - frac) + feats[upper] * frac


@dataclass
class SpecAugment:
    """Training-time augmentation of normalised features: a random tempo change, a random
    vocal-tract warp, a random band limit (the channels above a random cutoff zeroed, as audio
    sampled at 8 kHz looks after normalisation), and SpecAugment's frequency and time masks
    (Park et al. 2019)."""

    freq_masks: int = 2  # bands of mel channels zeroed
    freq_width: int = 6  # at most this many channels each
    time_masks: int = 2  # stretches of frames zeroed
    time_width: int = 12  # at most this many frames each ...
    time_fraction: float = 0.15  # ... and at most this fraction of the utterance
    warp: float = 0.0  # vocal-tract warp factor drawn from [1 - warp, 1 + warp] (0: off)
    tempo: float = 0.0  # tempo factor drawn from [1 - tempo, 1 + tempo] (0: off)
    band_limit: float = 0.0  # probability of zeroing the channels above a random cutoff
    config: FeatureConfig | None = None  # the features' config (needed for warp, band_limit)
    _warps: dict[float, Tensor] = field(default_factory=dict, init=False, repr=False)

    def __call__(self, feats: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``feats`` (frames, channels) augmented (a copy)."""

        def draw(high: int) -> int:
            return int(torch.randint(0, max(high, 0) + 1, (1,), generator=generator))

        def uniform() -> float:
            return float(torch.rand((), generator=generator))

        out = feats.clone()
        if self.tempo:
            out = stretch(out, 1.0 + self.tempo * (2 * uniform() - 1))
        frames, channels = out.shape

        if self.warp and self.config is not None:
            alpha = round(1.0 + self.warp * (2 * uniform() - 1), 3)  # a grid: matrices reused
            if alpha not in self._warps:
                self._warps[alpha] = warp_matrix(self.config, alpha).T.contiguous()
            out = out @ self._warps[alpha].to(out.dtype)
        if self.band_limit and self.config is not None and uniform() < self.band_limit:
            # A cutoff between 3.4 kHz (telephone) and the top: channels above it carry nothing.
            lowest = float(hz_to_mel(torch.tensor(3400.0)))
            low, high = hz_to_mel(torch.tensor([self.config.f_min, self.config.f_max])).tolist()
            first = int((lowest - low) / (high - low) * (channels + 1))
            out[:, draw(channels - first) + first :] = 0.0

        for _ in range(self.freq_masks):
            width = draw(min(self.freq_width, channels))
            start = draw(channels - width)
            out[:, start : start + width] = 0.0
        limit = min(self.time_width, math.floor(self.time_fraction * frames))
        for _ in range(self.time_masks):
            width = draw(limit)
            start = draw(frames - width)
            out[start : start + width] = 0.0
        return out
