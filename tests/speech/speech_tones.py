"""Tiny generated speech: each "character" is a tone, so a model can learn to read them."""

import random

import numpy as np
import soundfile

RATE = 16000
TONES = {"a": 500.0, "b": 1200.0, "c": 2400.0}
TINY = ["--hidden-size", "24", "--num-layers", "1", "--n-mels", "16", "--batch-frames", "1500",
        "--dropout", "0", "--warmup-steps", "5", "--lr", "0.01", "--eval-every", "40"]  # fmt: skip


def tone_word(text, rng):
    """Tones for the letters of ``text`` with short silences, at 16 kHz, plus a little noise."""
    pieces = [np.zeros(int(0.05 * RATE))]
    for ch in text:
        t = np.arange(int(rng.uniform(0.10, 0.16) * RATE)) / RATE
        pieces += [0.4 * np.sin(2 * np.pi * TONES[ch] * t), np.zeros(int(0.04 * RATE))]
    wave = np.concatenate(pieces)
    return wave + 0.003 * np.random.default_rng(rng.getrandbits(32)).standard_normal(len(wave))


def write_tone_corpus(folder, n=60, seed=0):
    """n WAV files of 1-3 tones and their transcript TSV (relative paths); returns its path."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        text = "".join(rng.choice("abc") for _ in range(rng.randint(1, 3)))
        soundfile.write(folder / f"u{i:03d}.wav", tone_word(text, rng), RATE, subtype="PCM_16")
        lines.append(f"u{i:03d}.wav\t{text}")
    tsv = folder / "transcripts.tsv"
    tsv.write_text("\n".join(lines) + "\n")
    return tsv
