"""Audio reading, resampling and log-mel features against NumPy transcriptions of the formulas."""

import math

import numpy as np
import pytest
import soundfile
import torch

from rnnkit.errors import DataError
from rnnkit.speech.audio import read_audio, read_blocks, resample
from rnnkit.speech.features import (
    FeatureConfig,
    SpecAugment,
    log_mel,
    mel_filterbank,
    normalize,
)


def chirp(seconds=0.5, rate=16000, f0=200.0, f1=3000.0):
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds)))).astype(
        np.float32
    )


def numpy_log_mel(x, c):
    """The same formulas, written independently: HTK mel, triangles, periodic Hann, rfft."""
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    inv = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    edges = inv(np.linspace(mel(c.f_min), mel(c.f_max), c.n_mels + 2))
    freqs = np.arange(c.n_fft // 2 + 1) * c.sample_rate / c.n_fft
    bank = np.zeros((len(freqs), c.n_mels))
    for j in range(c.n_mels):
        lo, mid, hi = edges[j : j + 3]
        for i, f in enumerate(freqs):
            if lo < f <= mid:
                bank[i, j] = (f - lo) / (mid - lo)
            elif mid < f < hi:
                bank[i, j] = (hi - f) / (hi - mid)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(c.n_fft) / c.n_fft)
    frames = 1 + (len(x) - c.n_fft) // c.hop
    out = np.empty((frames, c.n_mels))
    for t in range(frames):
        spectrum = np.fft.rfft(x[t * c.hop : t * c.hop + c.n_fft] * window)
        out[t] = np.log(np.abs(spectrum) ** 2 @ bank + c.floor)
    return out, bank


def test_log_mel_matches_numpy_reference():
    c = FeatureConfig(n_mels=24)
    x = chirp()
    expected, bank = numpy_log_mel(x.astype(np.float64), c)
    np.testing.assert_allclose(mel_filterbank(c).numpy(), bank, atol=1e-6)
    got = log_mel(torch.from_numpy(x).double(), c).numpy()
    assert got.shape == expected.shape == (c.frames(len(x)), 24)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_tone_lands_in_its_mel_channel():
    c = FeatureConfig()
    t = torch.arange(8000) / 16000
    feats = log_mel(torch.sin(2 * math.pi * 1000 * t), c)
    centres = [float(f) for f in mel_filterbank(c).argmax(0) * c.sample_rate / c.n_fft]
    best = int(feats.mean(0).argmax())
    assert abs(centres[best] - 1000) < 100


def test_too_short_audio_is_a_data_error():
    with pytest.raises(DataError, match="shorter than one feature frame"):
        log_mel(torch.zeros(100), FeatureConfig())


def test_normalize_and_specaugment():
    feats = torch.randn(50, 8) * 3 + 2
    norm = normalize(feats)
    torch.testing.assert_close(norm.mean(0), torch.zeros(8), atol=1e-5, rtol=0)
    torch.testing.assert_close(norm.std(0, unbiased=False), torch.ones(8), atol=1e-3, rtol=0)
    masked = SpecAugment(freq_masks=1, freq_width=3, time_masks=1, time_width=10)(
        norm, torch.Generator().manual_seed(1)
    )
    zero_cols = (masked == 0).all(0).sum()
    zero_rows = (masked == 0).all(1).sum()
    assert 0 < zero_cols <= 3 or 0 < zero_rows <= 10
    assert zero_rows <= 10 and zero_cols <= 3
    assert (masked != 0).sum() >= 50 * 8 - 10 * 8 - 3 * 50


@pytest.mark.parametrize(
    "rate, channels, subtype",
    [(16000, 1, "PCM_16"), (44100, 2, "PCM_24"), (8000, 1, "PCM_U8"), (22050, 3, "FLOAT")],
)
def test_any_rate_depth_and_channels_become_mono_16k(tmp_path, rate, channels, subtype):
    t = np.arange(rate // 2) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    data = np.stack([tone] * channels, axis=1)
    path = tmp_path / "a.wav"
    soundfile.write(path, data, rate, subtype=subtype)
    wave = read_audio(path, sample_rate=16000)
    assert wave.dtype == torch.float32 and wave.dim() == 1
    assert abs(wave.shape[0] - 8000) <= 1
    expected = 0.5 * np.sin(2 * np.pi * 440 * np.arange(wave.shape[0]) / 16000)
    tol = 0.02 if subtype == "PCM_U8" else 2e-3
    np.testing.assert_allclose(wave.numpy()[100:-100], expected[100:-100], atol=tol)


def test_flac_and_ogg(tmp_path):
    x = chirp(0.3)
    for name in ("a.flac", "a.ogg"):
        soundfile.write(tmp_path / name, x, 16000)
        wave = read_audio(tmp_path / name, sample_rate=16000)
        assert abs(wave.shape[0] - len(x)) < 100
    np.testing.assert_allclose(read_audio(tmp_path / "a.flac", sample_rate=16000), x, atol=1e-4)


def test_resampling_removes_what_the_new_rate_cannot_hold():
    x = torch.sin(2 * math.pi * 12000 * torch.arange(44100) / 44100)  # above 8 kHz
    assert float(resample(x, 44100, 16000)[200:-200].abs().max()) < 0.01


def test_blocks_join_to_the_whole_file(tmp_path):
    x = chirp(1.3, rate=22050)
    soundfile.write(tmp_path / "long.wav", x, 22050, subtype="FLOAT")
    whole = read_audio(tmp_path / "long.wav", sample_rate=16000)
    pieces = list(read_blocks(tmp_path / "long.wav", sample_rate=16000, seconds=0.25))
    assert len(pieces) == 6
    assert [start for start, _ in pieces] == sorted(start for start, _ in pieces)
    joined = torch.cat([block for _, block in pieces])
    assert abs(joined.shape[0] - whole.shape[0]) <= 1
    n = min(joined.shape[0], whole.shape[0])
    torch.testing.assert_close(joined[:n], whole[:n], atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_text("this is not audio\n" * 20), "cannot read"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt "), "cannot read"),
        (lambda p: soundfile.write(p, np.zeros(0), 16000, format="WAV"), "zero-length"),
        (lambda p: p.mkdir(), "directory"),
        (lambda p: None, "no such"),
    ],
)
def test_bad_audio_files_name_the_problem(tmp_path, make, message):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(DataError, match=message):
        read_audio(path, sample_rate=16000)


def test_vocal_tract_warp_moves_a_tone_to_the_scaled_frequency():
    from rnnkit.speech.features import warp_matrix

    c = FeatureConfig()
    torch.testing.assert_close(warp_matrix(c, 1.0), torch.eye(c.n_mels))
    t = torch.arange(8000) / 16000
    low = log_mel(torch.sin(2 * math.pi * 1000 * t), c).mean(0)
    high = log_mel(torch.sin(2 * math.pi * 1250 * t), c).mean(0)
    warped = low @ warp_matrix(c, 1.25).T
    assert abs(int(warped.argmax()) - int(high.argmax())) <= 1
    assert int(low.argmax()) < int(high.argmax())


def test_band_limit_zeroes_the_top_channels():
    c = FeatureConfig()
    feats = torch.randn(30, c.n_mels)
    out = SpecAugment(freq_masks=0, time_masks=0, band_limit=1.0, config=c)(
        feats, torch.Generator().manual_seed(0)
    )
    zero = (out == 0).all(0)
    assert bool(zero[-1]) and not bool(zero[:20].any())
    assert zero.int().diff().ge(0).all()  # one block at the top


@pytest.mark.parametrize("factor", [0.87, 1.0, 1.13, 1.5])
def test_tempo_stretch_matches_numpy_interpolation(factor):
    from rnnkit.speech.features import stretch

    feats = torch.randn(41, 5, dtype=torch.float64)
    out = stretch(feats, factor)
    n_out = round(41 / factor)
    where = np.minimum(np.arange(n_out) * factor, 40)  # input frame read by each output frame
    expected = np.stack([np.interp(where, np.arange(41), feats[:, j].numpy()) for j in range(5)], 1)
    assert out.shape == (n_out, 5)
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-12)


def test_tempo_perturbation_is_drawn_from_the_generator():
    feats = torch.randn(200, 8)
    augment = SpecAugment(freq_masks=0, time_masks=0, tempo=0.2)
    lengths = {augment(feats, torch.Generator().manual_seed(s)).shape[0] for s in range(20)}
    assert min(lengths) >= round(200 / 1.2) and max(lengths) <= round(200 / 0.8)
    assert len(lengths) > 5  # the factor varies
    a = augment(feats, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, augment(feats, torch.Generator().manual_seed(3)))


@pytest.mark.parametrize("alpha", [0.85, 1.1])
def test_vocal_tract_warp_matches_a_numpy_reference(alpha):
    """Output channel j holds the input interpolated at the channel whose centre frequency is
    centre_j / alpha (the centres equally spaced on the HTK mel scale between the edges)."""
    from rnnkit.speech.features import warp_matrix

    c = FeatureConfig()
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    hz = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    edges = np.linspace(mel(c.f_min), mel(c.f_max), c.n_mels + 2)
    centres = edges[1:-1]
    source = mel(hz(centres) / alpha)  # the mel frequency each output channel reads
    feats = np.random.default_rng(0).standard_normal((7, c.n_mels))
    expected = np.stack([np.interp(source, centres, row) for row in feats])
    warped = torch.from_numpy(feats).float() @ warp_matrix(c, alpha).T
    np.testing.assert_allclose(warped.numpy(), expected, rtol=0, atol=1e-5)
