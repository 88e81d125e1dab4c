"""The picture of a transcription: log-mel features, CTC posteriors, the aligned characters."""

from __future__ import annotations

import os
from typing import Any

from rnnkit.plots import save_figure
from rnnkit.speech.decode import forced_align, greedy_decode


def plot_transcription(asr: Any, audio: str | os.PathLike, transcript: Any, path: Any) -> None:
    """Draw the first block (30 s) of ``audio``: its log-mel spectrogram on top; below it each
    character's posterior probability per output frame (the blank as a grey area); and under
    that the characters of the best hypothesis at the frames the alignment gives them."""
    import matplotlib
    import numpy as np
    from matplotlib.figure import Figure

    blocks = asr.blocks(audio)
    first = next(blocks)
    feats, log_probs = first.feats, first.log_probs
    several = next(blocks, None) is not None
    probs = log_probs.exp().numpy()  # (T', C)
    step = asr.seconds_per_step
    seconds = feats.shape[0] * asr.features.frame_seconds
    # The transcript's own characters (a long file's first block: its greedy decoding).
    tokens = None if several else asr.alphabet.encode(transcript.text)
    tokens = tokens if tokens is not None else list(greedy_decode(log_probs).tokens)
    fig = Figure(figsize=(10, 6), dpi=100)
    top, middle, bottom = fig.subplots(3, 1, sharex=True, height_ratios=[3, 3, 1])
    top.imshow(feats.numpy().T, origin="lower", aspect="auto", cmap="magma",
               extent=(0, seconds, 0, feats.shape[1]))  # fmt: skip
    top.set_ylabel("mel channel")
    top.set_title(f"{os.path.basename(str(audio))}: {transcript.text!r}", fontsize=10)
    times = (0.5 + np.arange(probs.shape[0])) * step
    middle.fill_between(times, probs[:, 0], color="0.85", step="mid", label="blank")
    cmap = matplotlib.colormaps["tab20"]
    for k in range(1, probs.shape[1]):
        if probs[:, k].max() > 0.2:
            symbol = asr.alphabet.symbols[k]
            middle.plot(times, probs[:, k], color=cmap(k % 20), lw=1.2,
                        label=repr(symbol) if symbol == " " else symbol)  # fmt: skip
    middle.set_ylim(0, 1.02)
    middle.set_ylabel("CTC posterior")
    middle.legend(ncol=12, fontsize=7, loc="upper right", framealpha=0.8)
    bottom.set_yticks([])
    bottom.set_xlabel("seconds")
    if tokens:
        for k, (s, e) in zip(tokens, forced_align(log_probs, tokens)):
            symbol = asr.alphabet.symbols[k]
            bottom.axvspan(s * step, e * step, color=cmap(k % 20), alpha=0.35)
            bottom.text((s + e) / 2 * step, 0.5, "␣" if symbol == " " else symbol,
                        ha="center", va="center", fontsize=11)  # fmt: skip
    bottom.set_xlim(0, seconds)
    fig.tight_layout()
    save_figure(fig, path)
