"""The ``rnnkit`` command.

Each command group lives in ``rnnkit.commands.<group>`` and exposes ``register(subparsers)``, which
adds its sub-commands with ``set_defaults(func=handler)``; a handler takes the parsed arguments and
returns an exit code. Groups are imported lazily only when this module builds the parser, so
``import rnnkit`` stays cheap. User errors print one line and exit 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from rnnkit import __version__
from rnnkit.errors import RnnkitError

# (group name, module, one-line help). Order is the order of `rnnkit --help`.
COMMAND_GROUPS: tuple[tuple[str, str, str], ...] = (
    ("demo", "rnnkit.commands.demo", "train a Shakespeare model for 2 minutes, then generate"),
    ("lm", "rnnkit.commands.lm", "language models: train, evaluate, generate text"),
    ("embed", "rnnkit.commands.embed", "word embeddings: train, query, evaluate word vectors"),
    ("translate", "rnnkit.commands.translate", "machine translation with attention (seq2seq)"),
    ("speech", "rnnkit.speech.cli", "speech recognition: CTC acoustic models, transcribe audio"),
    ("reference", "rnnkit.commands.reference", "NumPy reference: BPTT by hand, char trainer"),
)

DESCRIPTION = """\
rnnkit: recurrent neural networks on PyTorch, written from scratch.

Run `rnnkit GROUP --help` for the commands of each group."""


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every command group registered."""
    parser = argparse.ArgumentParser(
        prog="rnnkit",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log library messages (INFO level) to stderr"
    )
    groups = parser.add_subparsers(dest="group", metavar="GROUP")
    for name, module_name, help_text in COMMAND_GROUPS:
        module = importlib.import_module(module_name)
        sub = groups.add_parser(
            name,
            help=help_text,
            description=(module.__doc__ or help_text).strip(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(group_parser=sub)
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rnnkit`` command; returns the process exit code."""
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    # A command whose last positional takes any number of values (`nargs="*"`) names it in
    # `set_defaults(trailing=...)`; values given after its options belong there too.
    trailing = getattr(args, "trailing", None)
    if extras and trailing and not any(e.startswith("-") for e in extras):
        getattr(args, trailing).extend(extras)
    elif extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    func = getattr(args, "func", None)
    if func is None:
        # A group without a sub-command: show that group's help (or the top-level help).
        target = getattr(args, "group_parser", parser)
        target.print_help()
        return 0 if args.group is None else 2
    try:
        return int(func(args) or 0)
    except RnnkitError as exc:
        print(f"rnnkit: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        # Library validation errors name the bad value; show them as one line, not a traceback.
        print(f"rnnkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rnnkit: interrupted", file=sys.stderr)
        return 130
