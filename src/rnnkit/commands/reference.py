"""The NumPy reference: BPTT written out by hand (no torch).

  rnnkit reference train                      train a character model on Shakespeare
  rnnkit reference train --data sample        ... on a small built-in text (no download)
  rnnkit reference train --data FILE --cell gru --hidden 64 --max-minutes 2
  rnnkit reference gradcheck                  hand-written BPTT vs central differences

The trainer prints the smoothed loss (nats per character) next to the unigram entropy of the
text, and a sample of generated text at the end.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rnnkit.errors import ConfigError, DownloadError, RnnkitError
from rnnkit.options import (
    POSITIVE,
    POSITIVE_NUMBER,
    HelpFormatter,
    add_encoding_argument,
    int_at_least,
)

# The corpus `rnnkit reference train` uses when --data is not given.
DEFAULT_DATA = "shakespeare"
# The --data value that selects the small built-in text.
NUMPY_SEED = int_at_least(0, 2**32 - 1)  # numpy's seed range

NUMPY_SEED = int_at_least(0, 2**32 - 1)  # numpy's seed range
BUILTIN = "sample"


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``reference`` sub-commands."""
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    train = commands.add_parser(
        "train",
        help="train a character-level model built only on the NumPy reference",
        description="Train a character-level rnn/lstm/gru with the NumPy reference "
        "(truncated BPTT, gradient clipping, Adagrad) and print a sample.",
        formatter_class=HelpFormatter,
    )
    train.add_argument(
        "--data",
        metavar="FILE",
        default=DEFAULT_DATA,
        help=f"text file or corpus name to train on, or '{BUILTIN}' for the small built-in text "
        "(default: %(default)s; the built-in text if it cannot be fetched)",
    )
    train.add_argument(
        "--cell",
        choices=("rnn", "lstm", "gru"),
        default="lstm",
        help="cell type (default: %(default)s)",
    )
    train.add_argument(
        "--nonlinearity",
        choices=("tanh", "relu"),
        default="tanh",
        help="rnn only (default: %(default)s)",
    )
    train.add_argument(
        "--hidden",
        type=POSITIVE,
        default=128,
        metavar="N",
        help="units per layer (default: %(default)s)",
    )
    train.add_argument(
        "--layers",
        type=POSITIVE,
        default=1,
        metavar="N",
        help="stacked layers (default: %(default)s)",
    )
    train.add_argument(
        "--seq-length",
        type=POSITIVE,
        default=25,
        metavar="K",
        help="characters per BPTT window (default: %(default)s)",
    )
    train.add_argument(
        "--batch-size",
        type=POSITIVE,
        default=16,
        metavar="B",
        help="parallel streams (default: %(default)s)",
    )
    train.add_argument(
        "--steps",
        type=POSITIVE,
        default=5000,
        metavar="N",
        help="updates at most (default: %(default)s)",
    )
    train.add_argument(
        "--max-minutes",
        type=POSITIVE_NUMBER,
        default=None,
        metavar="M",
        help="stop after M minutes (default: no limit)",
    )
    train.add_argument(
        "--lr",
        type=POSITIVE_NUMBER,
        default=None,
        help="Adagrad learning rate (default: rnn 0.03, else 0.1)",
    )
    train.add_argument(
        "--clip",
        type=POSITIVE_NUMBER,
        default=5.0,
        help="maximum gradient norm (default: %(default)s)",
    )
    train.add_argument(
        "--seed", type=NUMPY_SEED, default=0, help="seeds initialisation and sampling"
    )
    train.add_argument(
        "--log-every",
        type=POSITIVE,
        default=100,
        metavar="N",
        help="print the loss every N updates (default: %(default)s)",
    )
    train.add_argument(
        "--sample-length",
        type=POSITIVE,
        default=300,
        metavar="N",
        help="characters to generate (default: %(default)s)",
    )
    train.add_argument(
        "--temperature",
        type=POSITIVE_NUMBER,
        default=1.0,
        help="sampling temperature (default: %(default)s)",
    )
    train.add_argument(
        "--prime",
        default=None,
        help="text the sample continues (default: the lowest character, often a newline); "
        "every character must occur in the training text",
    )
    add_encoding_argument(train, "a --data file")
    train.set_defaults(func=run_train)

    gradcheck = commands.add_parser(
        "gradcheck",
        help="compare the hand-written BPTT gradients with central differences",
        description="For every cell type, one and two layers, compare the analytic gradient of "
        "every parameter, the input and the initial state with central differences (float64).",
        formatter_class=HelpFormatter,
    )
    gradcheck.add_argument("--seed", type=NUMPY_SEED, default=0, help="seed of the weights")
    gradcheck.set_defaults(func=run_gradcheck)


def load_text(data: str, encoding: str = "utf-8") -> tuple[str, str]:
    """The training text and a one-line description of where it came from.

    The default corpus falls back to the built-in text when it cannot be fetched (offline); a
    corpus or file the user names does not.
    """
    from rnnkit.data import load_corpus
    from rnnkit.reference.sample_text import SAMPLE_TEXT

    if data == BUILTIN and not Path(data).exists():
        return SAMPLE_TEXT, "built-in sample text"
    try:
        return load_corpus(data, encoding=encoding), data
    except DownloadError as exc:
        if data != DEFAULT_DATA:
            raise
        print(
            f"rnnkit: could not fetch the {data} corpus ({exc}); using the built-in sample text",
            file=sys.stderr,
        )
        return SAMPLE_TEXT, "built-in sample text"


def run_train(args: argparse.Namespace) -> int:
    """Handler of ``rnnkit reference train``.

    ``rnnkit.reference`` stays free of rnnkit's other modules and checks its arguments with
    ``ValueError``; here, at the command line's boundary, those are the user's settings.
    """
    try:
        return _train(args)
    except ValueError as exc:
        if isinstance(exc, RnnkitError):
            raise
        raise ConfigError(str(exc)) from None


def _train(args: argparse.Namespace) -> int:
    from rnnkit.reference.train import (
        DEFAULT_LR,
        Progress,
        TrainConfig,
        generate,
        train_char_model,
        unigram_entropy,
    )

    text, source = load_text(args.data, args.encoding)
    unknown = sorted(set(args.prime or "") - set(text))
    if unknown:  # checked now, not after the whole training run
        shown = ", ".join(repr(c) for c in unknown)
        raise ConfigError(f"--prime has characters that the training text lacks: {shown}")
    config = TrainConfig(
        cell=args.cell,
        hidden_size=args.hidden,
        num_layers=args.layers,
        nonlinearity=args.nonlinearity,
        seq_length=args.seq_length,
        batch_size=args.batch_size,
        steps=args.steps,
        max_minutes=args.max_minutes,
        lr=args.lr,
        clip=args.clip,
        seed=args.seed,
        log_every=args.log_every,
    )
    entropy = unigram_entropy(text)
    print(f"text: {source}, {len(text):,} characters, {len(set(text))} distinct")
    print(f"unigram entropy: {entropy:.3f} nats/char (a model must beat this to use context)")
    print(
        f"model: {config.cell}, {config.num_layers} x {config.hidden_size} hidden; "
        f"Adagrad lr {config.lr or DEFAULT_LR[config.cell]}, clip {config.clip}, "
        f"windows of {config.seq_length} chars x {config.batch_size} streams"
    )
    print(f"{'step':>7} {'chars':>11} {'loss':>7} {'smoothed':>9} {'elapsed':>8}")

    def show(p: Progress) -> None:
        print(
            f"{p.step:>7} {p.chars:>11,} {p.loss:>7.3f} {p.smooth_loss:>9.3f} {p.elapsed:>7.1f}s",
            flush=True,
        )

    result = train_char_model(text, config, on_progress=show)
    verdict = "below" if result.smooth_loss < entropy else "not yet below"
    print(
        f"final smoothed loss {result.smooth_loss:.3f} nats/char after {result.steps} steps "
        f"({result.elapsed:.0f}s): {verdict} the unigram entropy {entropy:.3f}"
    )
    sample = generate(
        result,
        length=args.sample_length,
        prime=args.prime,
        temperature=args.temperature,
        seed=args.seed,
    )
    print(f"--- sample ({args.sample_length} characters, temperature {args.temperature}) ---")
    print(sample)
    return 0


def run_gradcheck(args: argparse.Namespace) -> int:
    """Handler of ``rnnkit reference gradcheck``: exit 1 if any relative error reaches 1e-6."""
    from rnnkit.reference.gradcheck import check_sequence_gradients

    worst_overall = 0.0
    print(f"{'cell':<9} {'layers':>6}  {'worst relative error':>20}  {'where':<14}")
    for cell, nonlinearity in (("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh")):
        name = f"{cell}-{nonlinearity}" if cell == "rnn" else cell
        for num_layers in (1, 2):
            errors = check_sequence_gradients(
                cell, num_layers=num_layers, nonlinearity=nonlinearity, seed=args.seed
            )
            where = max(errors, key=errors.get)
            worst_overall = max(worst_overall, errors[where])
            print(f"{name:<9} {num_layers:>6}  {errors[where]:>20.2e}  {where:<14}")
    verdict = "ok" if worst_overall < 1e-6 else "FAILED"
    print(f"{verdict}: worst relative error {worst_overall:.2e} (threshold 1e-6)")
    return 0 if worst_overall < 1e-6 else 1
