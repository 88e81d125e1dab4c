"""The ``rnnkit`` command: the list of command groups and the one error policy.

Each application's command group lives in ``rnnkit.<app>.cli`` and exposes ``register(parser)``,
which adds its sub-commands with ``set_defaults(func=handler)``; a handler takes the parsed
arguments, calls the application's API and prints, and returns an exit code. Groups are imported
only when this module builds the parser, so ``import rnnkit.cli`` does not import torch.

The error policy, for every command:

- rnnkit's own errors (:class:`rnnkit.errors.RnnkitError`: bad data, settings, run directories,
  missing downloads or extras) and OS errors about a file the user named print one line
  ``rnnkit: error: ...`` and exit 2;
- :class:`rnnkit.training.TrainingInterrupted` (SIGINT/SIGTERM during training; a checkpoint was
  written) prints its one line and exits 130;
- SIGINT or SIGTERM anywhere else prints ``rnnkit: interrupted`` and exits 130 / 143;
- a closed output pipe (``rnnkit lm generate RUN | head -c 20``) ends the command quietly with
  status 141, as Unix tools do (128 + SIGPIPE); a full disk, ``> /dev/full`` included, is one
  line and exit 2 (files being written are left as they were: :mod:`rnnkit.files`);
- anything else is a bug: its traceback is shown (with ``-v``, the library's log lines too).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from rnnkit import __version__
from rnnkit.errors import RnnkitError, TrainingInterrupted
from rnnkit.files import is_disk_full
from rnnkit.options import HelpFormatter

# (group name, module, one-line help). Order is the order of `rnnkit --help`.
COMMAND_GROUPS: tuple[tuple[str, str, str], ...] = (
    ("demo", "rnnkit.lm.demo", "train a Shakespeare model for 2 minutes, then generate"),
    ("lm", "rnnkit.lm.cli", "language models: train, evaluate, generate text"),
    ("embed", "rnnkit.embed.cli", "word embeddings: train, query, evaluate word vectors"),
    ("translate", "rnnkit.translate.cli", "machine translation with attention (seq2seq)"),
    ("caption", "rnnkit.caption.cli", "image captioning with visual attention"),
    ("speech", "rnnkit.speech.cli", "speech recognition: CTC acoustic models, transcribe audio"),
    ("serve", "rnnkit.serve.cli", "local web playground: try trained runs in a browser"),
    ("reference", "rnnkit.commands.reference", "NumPy reference: BPTT by hand, char trainer"),
    ("forecast", "rnnkit.forecast.cli", "time-series forecasting: train, predict, backtest"),
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
            formatter_class=HelpFormatter,
        )
        sub.set_defaults(group_parser=sub)
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rnnkit`` command; returns the process exit code."""
    # A closed stdout or stderr (`rnnkit ... >&-`) leaves them None: write nowhere instead.
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 (lives as long as sys)
    parser = build_parser()
    # Under torchrun every rank parses the same command line: a misspelt option is reported by
    # rank 0 alone (the others exit with the same status, silently).
    other_rank = os.environ.get("RANK", "0") != "0"
    with contextlib.ExitStack() as quiet:
        if other_rank:
            devnull = quiet.enter_context(open(os.devnull, "w"))  # noqa: SIM115
            quiet.enter_context(contextlib.redirect_stderr(devnull))
        args, extras = parser.parse_known_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)  # what --nproc's workers run
        # A command whose last positional takes any number of values (`nargs="*"`) names it in
        # `set_defaults(trailing=...)`; values given after its options belong there too.
        trailing = getattr(args, "trailing", None)
        if extras and trailing and not any(e.startswith("-") for e in extras):
            getattr(args, trailing).extend(extras)
        elif extras:  # with the usage of the command the user typed, not the top level's
            typed = getattr(args, "command_parser", None) or getattr(args, "group_parser", parser)
            typed.error(f"unrecognized arguments: {' '.join(extras)}")
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
    return run_command(func, args)


class Terminated(BaseException):
    """SIGTERM outside training (raised by the handler :func:`main` installs)."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated


def user_file_error(exc: OSError) -> bool:
    """Whether ``exc`` is about a file the user named (it has a file name), not a bug."""
    return exc.filename is not None


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush of output that can no longer
    be written (a closed pipe, a full disk) raises nothing at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout replaced by a non-file object (tests)
        pass


def say(line: str, *, echo: bool = True) -> None:
    """Print the command's last line to stderr; under a launch of several processes (torchrun,
    ``--nproc``), a line that every rank would print is printed once, by rank 0 (``echo=False``:
    an interruption, which the launcher sends every rank, is rank 0's alone to report)."""
    if "WORLD_SIZE" in os.environ:
        from rnnkit.training.distributed import reported_by_rank_zero

        if reported_by_rank_zero(line, echo=echo):
            return
    print(line, file=sys.stderr, flush=True)


def run_command(func: Any, args: argparse.Namespace) -> int:
    """Run a command handler under the error policy (see the module docstring)."""
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM)
    if in_main:
        signal.signal(signal.SIGTERM, _terminate)
    try:
        code = int(func(args) or 0)
        sys.stdout.flush()  # a write error of the last output belongs to the command
        return code
    except BrokenPipeError:
        _silence_stdout()
        return 128 + signal.SIGPIPE
    except TrainingInterrupted as exc:
        say(f"rnnkit: {exc}")
        return 130
    except RnnkitError as exc:
        say(f"rnnkit: error: {exc}")
        return 2
    except OSError as exc:
        if is_disk_full(exc) and exc.filename is None:
            _silence_stdout()
            print(f"rnnkit: error: cannot write the output: {exc.strerror}", file=sys.stderr)
            return 2
        if not user_file_error(exc):
            raise
        say(f"rnnkit: error: {exc.filename}: {exc.strerror or exc}")
        return 2
    except KeyboardInterrupt:
        say("rnnkit: interrupted", echo=False)
        return 130
    except Terminated:
        say("rnnkit: terminated", echo=False)
        return 128 + signal.SIGTERM
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
