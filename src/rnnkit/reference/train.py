"""A minimal character-level trainer on the NumPy reference: truncated BPTT, clipping, Adagrad.

In the spirit of Karpathy's min-char-rnn, but for any cell and number of layers: the text is cut
into ``batch_size`` parallel streams, each update runs one window of ``seq_length`` characters
(the state carried over from the previous window), clips the gradient norm, and takes an Adagrad
step (Duchi et al. 2011)::

    m_p <- m_p + g_p^2                 p <- p - lr * g_p / sqrt(m_p + 1e-8)

The loss reported is the cross-entropy per character in nats; the trainer compares it with the
unigram entropy of the text, the loss of a model that knows only the character frequencies.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from rnnkit.reference.charmodel import CharModel, init_char_model, one_hot, sample
from rnnkit.reference.tbptt import batch_streams, clip_grad_norm, truncated_bptt

logger = logging.getLogger(__name__)

# Adagrad learning rate per cell when none is given. The vanilla RNN diverges early at 0.1 (its
# first steps move every weight of W_hh by lr at once); measured on Shakespeare, 400 updates.
DEFAULT_LR = {"rnn": 0.03, "lstm": 0.1, "gru": 0.1}
# Weight of the newest window in the smoothed loss (an exponential moving average).
SMOOTHING = 0.01


@dataclass
class TrainConfig:
    """Settings of :func:`train_char_model`."""

    cell: str = "lstm"  # "rnn", "lstm" or "gru"
    hidden_size: int = 128  # H, units per layer
    num_layers: int = 1  # stacked recurrent layers
    nonlinearity: str = "tanh"  # rnn only: "tanh" or "relu"
    seq_length: int = 25  # k: characters per truncated-BPTT window
    batch_size: int = 16  # parallel streams through the text
    steps: int = 5000  # updates (windows) at most
    max_minutes: float | None = None  # stop earlier after this much wall time
    lr: float | None = None  # Adagrad learning rate; None: DEFAULT_LR[cell]
    clip: float = 5.0  # maximum global gradient norm
    seed: int = 0  # seeds initialisation and sampling
    log_every: int = 100  # report progress every this many updates


class Progress(NamedTuple):
    """One progress report."""

    step: int  # updates done
    chars: int  # characters trained on so far
    loss: float  # this window's loss, nats per character
    smooth_loss: float  # exponential moving average of the loss, nats per character
    elapsed: float  # seconds since training started


@dataclass
class TrainResult:
    """A trained model and how training ended."""

    model: CharModel  # the trained model
    vocab: str  # the characters, in index order
    steps: int  # updates done
    smooth_loss: float  # final smoothed loss, nats per character
    elapsed: float  # seconds spent training


def build_vocab(text: str) -> str:
    """The distinct characters of ``text``, sorted: character ``vocab[i]`` has index ``i``."""
    return "".join(sorted(set(text)))


def unigram_entropy(text: str) -> float:
    """Entropy of the character frequencies of ``text`` in nats per character."""
    counts = np.array(list(Counter(text).values()), dtype=np.float64)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def adagrad_update(
    params: dict[str, np.ndarray],
    grads: Mapping[str, np.ndarray],
    memory: dict[str, np.ndarray],
    lr: float,
) -> None:
    """One Adagrad step, in place; ``memory`` holds the running sums of squared gradients."""
    for name, g in grads.items():
        if name not in memory:
            memory[name] = np.zeros_like(g)
        m = memory[name]
        m += g * g
        params[name] -= lr * g / np.sqrt(m + 1e-8)


def train_char_model(
    text: str,
    config: TrainConfig,
    *,
    on_progress: Callable[[Progress], None] | None = None,
) -> TrainResult:
    """Train a character model on ``text`` with truncated BPTT and Adagrad.

    Stops after ``config.steps`` updates or ``config.max_minutes`` of wall time, whichever comes
    first. At the end of the text every stream starts again from its beginning with a zero state.
    """
    for name in ("hidden_size", "num_layers", "seq_length", "batch_size", "steps", "log_every"):
        value = getattr(config, name)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if config.max_minutes is not None and config.max_minutes <= 0:
        raise ValueError(f"max_minutes must be positive, got {config.max_minutes}")
    lr = DEFAULT_LR.get(config.cell, 0.1) if config.lr is None else config.lr
    if lr <= 0:
        raise ValueError(f"lr must be positive, got {lr}")
    if config.clip <= 0:
        raise ValueError(f"clip must be positive, got {config.clip}")
    vocab = build_vocab(text)
    index = {ch: i for i, ch in enumerate(vocab)}
    tokens = np.array([index[ch] for ch in text], dtype=np.int64)
    streams = batch_streams(tokens, config.batch_size)  # (N // B, B)
    rng = np.random.default_rng(config.seed)
    model = init_char_model(
        len(vocab),
        cell=config.cell,
        hidden_size=config.hidden_size,
        num_layers=config.num_layers,
        nonlinearity=config.nonlinearity,
        rng=rng,
    )
    logger.info("training a %s on %d characters, vocabulary %d", config.cell, len(text), len(vocab))

    memory: dict[str, np.ndarray] = {}
    smooth = math.log(len(vocab))  # the loss of a uniform guess
    step, chars, start = 0, 0, time.perf_counter()
    deadline = None if config.max_minutes is None else start + 60.0 * config.max_minutes
    while True:  # one pass over the streams per iteration, each from a zero state
        for window in truncated_bptt(model, streams, config.seq_length):
            clip_grad_norm(window.grads, config.clip)
            adagrad_update(model.params, window.grads, memory, lr)
            step += 1
            chars += window.steps * config.batch_size
            per_char = window.loss / window.steps  # the loss is already a mean over the batch
            smooth = (1.0 - SMOOTHING) * smooth + SMOOTHING * per_char
            out_of_time = deadline is not None and time.perf_counter() >= deadline
            done = step >= config.steps or out_of_time
            if on_progress is not None and (step % config.log_every == 0 or done):
                elapsed = time.perf_counter() - start
                on_progress(Progress(step, chars, per_char, smooth, elapsed))
            if done:
                return TrainResult(model, vocab, step, smooth, time.perf_counter() - start)


def generate(
    result: TrainResult,
    *,
    length: int,
    prime: str | None = None,
    temperature: float = 1.0,
    seed: int = 0,
) -> str:
    """``prime`` followed by ``length`` characters sampled from a trained model.

    The model reads ``prime`` first (default: the first character of the vocabulary, usually a
    newline or space), so the sample continues it.
    """
    vocab = result.vocab
    prime = prime or vocab[0]
    unknown = sorted(set(prime) - set(vocab))
    if unknown:
        raise ValueError(f"prime has characters not in the vocabulary: {''.join(unknown)!r}")
    indices = np.array([vocab.index(ch) for ch in prime])
    state = None
    if len(prime) > 1:
        _, state, _ = result.model.forward(one_hot(indices[:-1, None], len(vocab)), None)
    rng = np.random.default_rng(seed)
    drawn = sample(
        result.model, int(indices[-1]), length, rng=rng, state=state, temperature=temperature
    )
    return prime + "".join(vocab[i] for i in drawn)
