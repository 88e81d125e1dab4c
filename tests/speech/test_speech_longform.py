"""Long recordings: cuts at pauses, overlapping windows stitched by their alignments, the k-best
merge of the segments' n-best lists, and bounded memory on a 20-minute file."""

import itertools
import random
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile
import torch

from rnnkit.errors import ConfigError
from rnnkit.speech.api import Recognizer
from rnnkit.speech.data import Alphabet
from rnnkit.speech.decode import Span
from rnnkit.speech.features import FeatureConfig, log_mel
from rnnkit.speech.longform import (
    SegmentConfig,
    Stitcher,
    Window,
    kbest_sums,
    segments,
    stitch_point,
)

RATE = 16000
HZ = {"a": 500.0, "b": 1200.0, "c": 2400.0, " ": 3600.0}  # a tone per character, the space too


def test_segments_cut_at_pauses_and_join_to_the_whole(tmp_path):
    rng = np.random.default_rng(0)
    loud = lambda s: 0.5 * rng.standard_normal(int(s * RATE))  # noqa: E731
    quiet = lambda s: np.zeros(int(s * RATE))  # noqa: E731
    x = np.concatenate([loud(0.7), quiet(0.1), loud(0.5), quiet(0.1), loud(0.9)])
    soundfile.write(tmp_path / "x.wav", x, RATE, subtype="FLOAT")
    config = SegmentConfig(max_seconds=1.0, min_seconds=0.5, pause_seconds=0.05,
                           overlap_seconds=0.2)  # fmt: skip
    found = list(segments(tmp_path / "x.wav", sample_rate=RATE, config=config))
    assert [s.overlap for s in found] == [0, 0, 0]
    assert 0.7 * RATE <= found[1].start <= 0.8 * RATE  # cut inside the first pause
    assert 1.3 * RATE <= found[2].start <= 1.4 * RATE  # and inside the second
    joined = torch.cat([s.wave for s in found])
    torch.testing.assert_close(joined, torch.from_numpy(x).float(), atol=1e-6, rtol=0)


def test_speech_without_a_pause_is_read_in_overlapping_windows(tmp_path):
    x = 0.3 * np.random.default_rng(1).standard_normal(int(3.3 * RATE))
    soundfile.write(tmp_path / "x.wav", x, RATE, subtype="FLOAT")
    config = SegmentConfig(max_seconds=1.0, min_seconds=0.6, overlap_seconds=0.4)
    found = list(segments(tmp_path / "x.wav", sample_rate=RATE, config=config))
    assert len(found) >= 4 and found[0].overlap == 0
    for before, after in zip(found, found[1:]):
        assert after.overlap == int(0.4 * RATE)
        assert after.start + after.overlap == before.start + before.wave.shape[0]
        assert 0.6 * RATE <= before.wave.shape[0] <= RATE
    assert found[-1].start + found[-1].wave.shape[0] == len(x)
    for s in found:  # every window is the file's own samples at its place
        own = torch.from_numpy(x[s.start : s.start + len(s.wave)]).float()
        torch.testing.assert_close(s.wave, own)


@pytest.mark.parametrize(
    "settings",
    [
        dict(min_seconds=2.0, max_seconds=1.0),
        dict(pause_seconds=20.0),
        dict(overlap_seconds=15.0),
        dict(overlap_seconds=-1.0),
    ],  # fmt: skip
)
def test_bad_segment_settings_are_config_errors(settings):
    with pytest.raises(ConfigError):
        SegmentConfig(**settings)


# ----------------------------------------------------------------------------------------------
# A recording whose characters are known: tones read by a hand-built acoustic model


class ToneReader(torch.nn.Module):
    """An exact acoustic model of tone speech: a frame whose loudest mel channel is a tone's
    channel, and loud enough, is that tone's character (probability 0.97); otherwise blank."""

    def __init__(self, features, alphabet):
        super().__init__()
        self.config = SimpleNamespace(stack=1)
        t = torch.arange(features.n_fft * 4) / features.sample_rate
        self.channel = {}
        for ch, hz in HZ.items():
            mel = log_mel(torch.sin(2 * torch.pi * hz * t), features).mean(0)
            self.channel[int(mel.argmax())] = alphabet.index[ch]
        self.classes = len(alphabet)

    def forward(self, feats, lengths):
        x = feats[0]  # (T, n_mels): raw log-mel (the statistics are 0 and 1)
        peak, channel = x.max(1)
        classes = [self.channel.get(int(c), 0) if p > 0.0 else 0
                   for p, c in zip(peak.tolist(), channel.tolist())]  # fmt: skip
        out = torch.full((x.shape[0], self.classes), np.log(0.03 / (self.classes - 1)))
        out[torch.arange(x.shape[0]), torch.tensor(classes, dtype=torch.long)] = np.log(0.97)
        return out.unsqueeze(1), lengths


def tone_reader() -> Recognizer:
    features = FeatureConfig()
    alphabet = Alphabet(list("abc "))
    stats = (torch.zeros(features.n_mels), torch.ones(features.n_mels))
    return Recognizer(ToneReader(features, alphabet), alphabet, features, stats, {})


def tone_speech(words, seed, silent_gap_at=None):
    """Words as runs of tones, 40 ms apart, a space tone between words, no pause anywhere;
    low noise, except one gap of exact silence inside the word ``silent_gap_at`` (a stop
    closure, the quietest place of the file). Returns the signal and each word's
    (start, end) seconds."""
    rng = random.Random(seed)
    noise = np.random.default_rng(seed)
    pieces, times, clock = [], [], 0.0

    def add(samples):
        nonlocal clock
        pieces.append(samples)
        clock += len(samples) / RATE

    def gap(exact):
        n = int(0.04 * RATE)
        add(np.zeros(n) if exact else 0.01 * noise.standard_normal(n))

    def tone(ch):
        t = np.arange(int(rng.uniform(0.10, 0.16) * RATE)) / RATE
        add(0.4 * np.sin(2 * np.pi * HZ[ch] * t))

    gap(False)
    for w, word in enumerate(words):
        if w:
            tone(" ")
            gap(False)
        start = clock
        for i, ch in enumerate(word):
            tone(ch)
            if i < len(word) - 1:
                gap(w == silent_gap_at and i == 1)
        times.append((start, clock))
        gap(False)
    return np.concatenate(pieces), times


def test_old_cut_splits_a_word_and_overlapping_windows_do_not(tmp_path):
    rng = random.Random(3)
    words = ["".join(rng.choice("abc") for _ in range(rng.randint(3, 5))) for _ in range(14)]
    wave, times = tone_speech(words, seed=3, silent_gap_at=4)  # word 4 starts after about 3 s
    assert 2.5 < times[4][0] < 3.5 and wave.shape[0] / RATE > 10
    soundfile.write(tmp_path / "long.flac", wave, RATE)
    asr = tone_reader()
    expected = " ".join(words)

    # The old cut: at the quietest 10 ms between min and max, no overlap.
    asr.segmenting = SegmentConfig(max_seconds=4.0, min_seconds=2.0, pause_seconds=0.01,
                                   overlap_seconds=0.0)  # fmt: skip
    old = asr.transcribe([tmp_path / "long.flac"])[0].text
    # The silent gap inside word 4 became the first cut: the word is split in two.
    assert old.split()[:6] == [*words[:4], words[4][:2], words[4][2:]]
    assert old.replace(" ", "") == expected.replace(" ", "")

    asr.segmenting = SegmentConfig(max_seconds=4.0, min_seconds=2.0, overlap_seconds=1.8)
    blocks = list(asr.blocks(tmp_path / "long.flac"))
    assert len(blocks) >= 4 and all(b.overlap > 0 for b in blocks[1:])  # no pause anywhere
    for beam in (1, 4):
        (t,) = asr.transcribe([tmp_path / "long.flac"], beam=beam, timestamps=True)
        assert t.text == expected
        assert [w.text for w in t.words] == words
        for w, (start, end) in zip(t.words, times):  # in the file's seconds
            assert abs(w.start - start) < 0.03 and abs(w.end - end) < 0.03


def timed(text, start, step=0.1):
    """Characters each 0.1 s long from ``start``, as an alignment would place them."""
    return [Span(c, start + i * step, start + (i + 1) * step) for i, c in enumerate(text)]


def window(start, end, overlap, text_start, hyps):
    """A window whose hypotheses all start at ``text_start`` seconds, 0.1 s a character."""

    def align(text):
        return [(s.start, s.end) for s in timed(text, text_start)]

    return Window(start, end, overlap, hyps, align)


def test_stitching_a_constructed_overlap_is_exact():
    # The truth: "one two three four five", 0.1 s a character from 0 s (2.3 s). Window A
    # [0, 1.9) ends inside "four" and heard "fo"; window B [0.6, 2.3) starts inside "two" and
    # heard "o". Of their overlap [0.6, 1.9), the middle half [0.925, 1.575) holds the end of
    # "three", the space and the start of "four": the join is at that space.
    truth = "one two three four five"
    a = window(0.0, 1.9, 0.0, 0.0, [("one two three fo", -1.0), ("one two tree fo", -2.0)])
    b = window(0.6, 2.3, 1.3, 0.6, [("o three four five", -3.0), ("o three for five", -3.5)])
    stitcher = Stitcher(nbest=4, timestamps=True)
    stitcher.add(a)
    stitcher.add(b)
    out = stitcher.finish()
    assert out.text == truth
    assert [(w.text, w.start, w.end) for w in out.words] == [
        ("one", 0.0, 0.3), ("two", 0.4, 0.7), ("three", 0.8, 1.3), ("four", 1.4, 1.8),
        ("five", 1.9, 2.3),
    ]  # fmt: skip
    assert out.nbest == [
        (truth, -4.0), ("one two three for five", -4.5), ("one two tree four five", -5.0),
        ("one two tree for five", -5.5),
    ]  # fmt: skip


def test_stitch_point_prefers_a_word_boundary_and_falls_back_to_letters():
    a, b = timed("ab cd", 0.0), timed("ab cd", 0.0)
    m, between = stitch_point(a, b, 0.0, 0.5)
    assert between and 0.2 <= m <= 0.3  # inside the space
    # No space in the overlap: a gap between letters, and the halves join without a space.
    a = [Span("x", 0.0, 0.1), Span("y", 0.3, 0.4)]
    m, between = stitch_point(a, a, 0.0, 0.4)
    assert not between and 0.1 <= m <= 0.3
    stitcher = Stitcher()
    stitcher.add(window(0.0, 0.4, 0.0, 0.0, [("xy", 0.0)]))
    stitcher.add(window(0.0, 0.4, 0.4, 0.0, [("xy", 0.0)]))
    assert stitcher.finish().text == "xy"  # each letter once


def test_a_window_without_hypotheses_adds_nothing():
    stitcher = Stitcher(nbest=2, timestamps=True)  # (a lexicon may forbid every hypothesis)
    stitcher.add(window(0.0, 1.0, 0.0, 0.0, [("ab", -1.0), ("a", -2.0)]))
    stitcher.add(window(1.0, 2.0, 0.0, 1.0, []))
    stitcher.add(window(1.5, 3.0, 0.5, 2.0, [("cd", -3.0)]))
    out = stitcher.finish()
    assert out.text == "ab cd" and out.nbest == [("ab cd", -4.0), ("a cd", -5.0)]
    assert [w.text for w in out.words] == ["ab", "cd"]


def brute_force(lists, k, junctions):
    best = {}
    for choice in itertools.product(*lists):
        text = choice[0][0]
        for junction, (t, _) in zip(junctions, choice[1:]):
            text = text + junction + t if text and t else text or t
        score = sum(s for _, s in choice)
        best[text] = max(score, best.get(text, -np.inf))
    return sorted(best.items(), key=lambda e: -e[1])[:k]


@pytest.mark.parametrize("seed", range(12))
def test_kbest_merge_equals_brute_force_enumeration(seed):
    rng = random.Random(seed)
    words = ["", "a", "ab", "b", "ba"]  # repeats and empty pieces make equal joined texts
    lists = []
    for _ in range(rng.randint(1, 4)):
        scores = sorted((rng.uniform(-5, 0) for _ in range(rng.randint(1, 4))), reverse=True)
        lists.append([(rng.choice(words), s) for s in scores])
    junctions = [rng.choice([" ", ""]) for _ in lists[1:]]
    for k in (1, 2, 3, 5, 8):
        got = kbest_sums(lists, k, junctions)
        want = brute_force(lists, k, junctions)
        assert [t for t, _ in got] == [t for t, _ in want]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want])


def test_nbest_of_a_long_file_sums_its_segments(trained, tmp_path, run_cli):
    import json

    from speech_tones import tone_word

    from rnnkit.speech import api

    rng = random.Random(1)
    silence = np.zeros(int(0.3 * RATE))
    wave = np.concatenate([tone_word("ab", rng), silence, tone_word("c", rng), silence,
                           tone_word("ba", rng)])  # fmt: skip
    soundfile.write(tmp_path / "long.wav", wave, RATE)
    asr = api.load(trained)
    asr.segmenting = SegmentConfig(max_seconds=0.8, min_seconds=0.4, pause_seconds=0.1,
                                   overlap_seconds=0.2)  # fmt: skip
    blocks = list(asr.blocks(tmp_path / "long.wav"))
    assert len(blocks) >= 2 and all(b.overlap == 0 for b in blocks)
    per_block = [[(asr.text(h.tokens), h.score) for h in asr.decode(b.log_probs, beam=4, nbest=3)]
                 for b in blocks]  # fmt: skip
    (t,) = asr.transcribe([tmp_path / "long.wav"], beam=4, nbest=3)
    want = kbest_sums(per_block, 3)
    assert len(t.nbest) == 3 and t.nbest[0][0] == t.text
    assert [x for x, _ in t.nbest] == [x for x, _ in want]
    np.testing.assert_allclose([s for _, s in t.nbest], [s for _, s in want])
    assert t.nbest[0][1] == pytest.approx(sum(p[0][1] for p in per_block))
    # The command line gives the same list (the default segments hold this file whole).
    code, out, err = run_cli("speech", "transcribe", trained, tmp_path / "long.wav", "--nbest",
                             "3", "--json")  # fmt: skip
    assert code == 0, err
    nbest = json.loads(out)["nbest"]
    assert len(nbest) == 3 and nbest[0]["score"] >= nbest[1]["score"] >= nbest[2]["score"]


MEMORY_SCRIPT = textwrap.dedent(
    """
    import resource, sys, torch
    from rnnkit.speech.api import Recognizer
    from rnnkit.speech.data import Alphabet
    from rnnkit.speech.features import FeatureConfig
    from rnnkit.speech.model import AcousticConfig, AcousticModel

    torch.set_num_threads(1)
    torch.manual_seed(0)
    features = FeatureConfig(n_mels=16)
    alphabet = Alphabet(list("ab "))
    model = AcousticModel(AcousticConfig(n_mels=16, num_classes=4, hidden_size=8, num_layers=1,
                                         dropout=0.0)).eval()
    asr = Recognizer(model, alphabet, features, None, {})
    asr.transcribe([sys.argv[1]], timestamps=True)  # a minute: the peak of one segment
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    (t,) = asr.transcribe([sys.argv[2]], timestamps=True)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(t.seconds, (after - before) / 1024)
    """
)


def test_a_20_minute_file_is_transcribed_in_bounded_memory(tmp_path):
    minutes, block = 20, 10 * RATE
    rng = np.random.default_rng(0)
    with soundfile.SoundFile(tmp_path / "long.flac", "w", RATE, 1, subtype="PCM_16") as f:
        for _ in range(minutes * 60 * RATE // block):
            # 10 s of noise bursts: some pauses, some 10 s without one.
            level = np.repeat(rng.uniform(0, 0.3, 10) * (rng.random(10) < 0.8), RATE)
            f.write((level * rng.standard_normal(block)).astype(np.float32))
    soundfile.write(tmp_path / "short.wav", 0.1 * rng.standard_normal(60 * RATE), RATE)
    argv = [sys.executable, "-c", MEMORY_SCRIPT, tmp_path / "short.wav", tmp_path / "long.flac"]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    seconds, growth_mb = map(float, done.stdout.split())
    assert seconds == pytest.approx(minutes * 60, abs=0.05)
    whole_mb = minutes * 60 * RATE * 4 / 2**20  # the file as float32 samples: 73 MB
    assert growth_mb < whole_mb / 3, f"peak RSS grew {growth_mb:.0f} MB"
