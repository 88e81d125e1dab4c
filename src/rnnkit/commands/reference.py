"""The NumPy reference: BPTT written out by hand (no torch).

  rnnkit reference train                      train a character model on the default text
  rnnkit reference train --data FILE --cell gru --hidden 64 --max-minutes 2

The trainer prints the smoothed loss (nats per character) next to the unigram entropy of the
text, and a sample of generated text at the end.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rnnkit.errors import DataError


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``reference`` sub-commands."""
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    train = commands.add_parser(
        "train",
        help="train a character-level model built only on the NumPy reference",
        description="Train a character-level rnn/lstm/gru with the NumPy reference "
        "(truncated BPTT, gradient clipping, Adagrad) and print a sample.",
    )
    train.add_argument(
        "--data",
        metavar="FILE",
        help="UTF-8 text file to train on (default: the built-in sample text)",
    )
    train.add_argument("--cell", choices=("rnn", "lstm", "gru"), default="lstm")
    train.add_argument("--nonlinearity", choices=("tanh", "relu"), default="tanh", help="rnn only")
    train.add_argument("--hidden", type=int, default=128, metavar="N", help="units per layer")
    train.add_argument("--layers", type=int, default=1, metavar="N", help="stacked layers")
    train.add_argument(
        "--seq-length", type=int, default=25, metavar="K", help="characters per BPTT window"
    )
    train.add_argument("--batch-size", type=int, default=16, metavar="B", help="parallel streams")
    train.add_argument("--steps", type=int, default=5000, metavar="N", help="updates at most")
    train.add_argument(
        "--max-minutes", type=float, default=None, metavar="M", help="stop after M minutes"
    )
    train.add_argument("--lr", type=float, default=0.1, help="Adagrad learning rate")
    train.add_argument("--clip", type=float, default=5.0, help="maximum gradient norm")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--log-every", type=int, default=100, metavar="N")
    train.add_argument("--sample-length", type=int, default=300, metavar="N")
    train.add_argument("--temperature", type=float, default=1.0)
    train.set_defaults(func=run_train)


def load_text(data: str | None) -> tuple[str, str]:
    """The training text and a one-line description of where it came from."""
    if data is None:
        from rnnkit.reference.sample_text import SAMPLE_TEXT

        return SAMPLE_TEXT, "built-in sample text"
    path = Path(data)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{data} is not UTF-8 text ({exc.reason}); convert it to UTF-8") from exc
    if not text:
        raise DataError(f"{data} is empty; pass a file with text in it")
    return text, str(path)


def run_train(args: argparse.Namespace) -> int:
    """Handler of ``rnnkit reference train``."""
    from rnnkit.reference.train import (
        Progress,
        TrainConfig,
        generate,
        train_char_model,
        unigram_entropy,
    )

    text, source = load_text(args.data)
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
        f"Adagrad lr {config.lr}, clip {config.clip}, "
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
        result, length=args.sample_length, temperature=args.temperature, seed=args.seed
    )
    print(f"--- sample ({args.sample_length} characters, temperature {args.temperature}) ---")
    print(sample)
    return 0
