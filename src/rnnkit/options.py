"""Command-line pieces shared by the command groups: help layout, run location, budgets, word
vectors, threads, progress messages. Torch-free (``--help`` must not import torch).

Each group's ``cli.py`` builds its sub-commands with :func:`add_command` (so every ``--help``
shows defaults the same way) and takes its defaults from its recipe dataclass.
"""

from __future__ import annotations

import argparse
import codecs
import math
import os
import sys
from collections.abc import Callable
from typing import Any

BUDGETS = ("epochs", "max_steps", "max_minutes")  # a recipe's budget fields (TrainConfig's)
# Options that say how this process runs, not what the run is: a resume may give them.
# Options that say how and where to run, not what: a resume may give them (the trainer itself
# refuses another number of processes, see docs/distributed.md).
PROCESS_OPTIONS = frozenset(
    {
        "out",
        "resume",
        "quiet",
        "threads",
        "verbose",
        "device",
        "precision",
        "nproc",
        "port",
        *BUDGETS,
    }
)


# ---------------------------------------------------------------------------------------------
# Value checks at parse time: `type=` callables that give argparse's one-line usage error with
# the allowed range ("argument --beam: must be an integer >= 1, got 0").


def int_at_least(low: int, high: int | None = None, *, multiple: int = 1) -> Callable[[str], int]:
    """An argparse ``type`` for an integer in ``[low, high]`` (a multiple of ``multiple``)."""
    allowed = f">= {low}" if high is None else f"from {low} to {high}"
    kind = "an integer" if multiple == 1 else f"a multiple of {multiple}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {kind} {allowed}, got {text!r}") from None
        if value < low or (high is not None and value > high) or value % multiple:
            raise argparse.ArgumentTypeError(f"must be {kind} {allowed}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def number(
    low: float | None = None, high: float | None = None, *, open_low: bool = False
) -> Callable[[str], float]:
    """An argparse ``type`` for a finite number in ``[low, high]`` (``(low, high]`` with
    ``open_low``); NaN and infinities are refused."""
    parts = []
    if low is not None:
        parts.append(f"{'>' if open_low else '>='} {low:g}")
    if high is not None:
        parts.append(f"<= {high:g}")
    allowed = "a finite number" + (f" {' and '.join(parts)}" if parts else "")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}") from None
        too_low = low is not None and (value <= low if open_low else value < low)
        if not math.isfinite(value) or too_low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


POSITIVE = int_at_least(1)  # sizes, counts, widths
NON_NEGATIVE = int_at_least(0)  # warm-up steps, intervals where 0 means "off"
SEED = int_at_least(0, 2**63 - 1)  # torch.manual_seed's range
FINITE_NUMBER = number()  # weights and bonuses of any sign
POSITIVE_NUMBER = number(0.0, open_low=True)  # learning rates, temperatures, minutes
NON_NEGATIVE_NUMBER = number(0.0)  # weight decay, clipping (0: off)
PROBABILITY = number(0.0, 1.0)  # dropout
TOP_P = number(0.0, 1.0, open_low=True)  # nucleus sampling threshold
SMOOTHING = number(0.0, 0.999)  # label smoothing
EMA_DECAY = number(0.0, 0.999999)  # the weights' moving average per step (0: off)
PARTIAL = number(0.0, 0.99)  # shares of the true words replaced: scheduled sampling, word dropout
# Beam widths and n-best lists: a sanity range (rnnkit.search.settings.MAX_BEAM); memory decides
# the real cap when decoding starts (rnnkit.limits.check_decoding).
BEAM = int_at_least(1, 100_000)


def resume_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The options of a training command given on the command line with a value other than its
    default, except the process options (:data:`PROCESS_OPTIONS`): what a ``--resume`` asks to
    change. :func:`rnnkit.runs.check_resumable` accepts the budgets and rejects the rest."""
    parser = getattr(args, "command_parser", None)
    budget = budget_of(args)
    if parser is None:
        return budget
    changed = {}
    for action in parser._actions:
        dest = action.dest
        if not action.option_strings or dest in PROCESS_OPTIONS or not hasattr(args, dest):
            continue
        if getattr(args, dest) != action.default:
            changed[dest] = getattr(args, dest)
    return {**changed, **budget}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written; every option's default (taken from the recipe) shown as
    ``(default: X)``, except flags and options that are unset by default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        unset = default is None or default is False or default is argparse.SUPPRESS
        shown = not unset and action.option_strings
        if shown and "%(default)" not in text and "(default:" not in text:
            text += " (default: %(default)s)"
        return text


def add_command(
    commands: Any, name: str, help_text: str, func: Callable[[argparse.Namespace], int]
) -> argparse.ArgumentParser:
    """A sub-command ``name`` running ``func`` (``commands``: the group's ``add_subparsers()``)."""
    parser = commands.add_parser(
        name, help=help_text, description=help_text, formatter_class=HelpFormatter
    )
    parser.set_defaults(func=func, command_parser=parser)
    return parser


def add_run_location(parser: argparse.ArgumentParser) -> None:
    """``--out RUN_DIR`` (a new run) or ``--resume RUN_DIR`` (continue one), exactly one."""
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", metavar="RUN_DIR", help="new (or empty) run directory")
    where.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")


def add_budget_arguments(group: Any, recipe: Any) -> None:
    """``--epochs``, ``--max-steps``, ``--max-minutes``; the recipe's budget applies when none
    is given (and a resumed run keeps its own unless one is given)."""
    given = {name: getattr(recipe, name) for name in BUDGETS}
    default = ", ".join(f"--{k.replace('_', '-')} {v:g}" for k, v in given.items() if v is not None)
    group.add_argument("--epochs", type=POSITIVE, help="passes over the training data")
    group.add_argument(
        "--max-steps",
        type=POSITIVE,
        help="optimizer steps. The learning-rate schedule spans the budget: giving a resumed "
        "run a new budget stretches the rest of its schedule to it, so resuming with "
        "--max-steps N after N/2 steps is not the same as N steps straight (an interrupted "
        "run resumed with its own budget is)",
    )
    group.add_argument(
        "--max-minutes",
        type=POSITIVE_NUMBER,
        help=f"wall-clock budget (when no budget is given: {default})",
    )


def add_ema_argument(group: Any, default: float) -> None:
    """``--ema D``: the recipe field ``ema`` (TrainConfig.ema, the trainer's exponential moving
    average of the weights)."""
    group.add_argument(
        "--ema", type=EMA_DECAY, default=default, metavar="D",
        help="validate and keep a moving average of the weights, this decay per step (training "
        "goes on with the weights as trained; 0: off)",
    )  # fmt: skip


def budget_of(args: argparse.Namespace) -> dict[str, Any]:
    """The budget options given on the command line (None where not given)."""
    return {name: getattr(args, name) for name in BUDGETS}


def recipe_budget(args: argparse.Namespace, recipe: Any) -> dict[str, Any]:
    """The budget of a new run: the options given, or the recipe's when none is."""
    budget = budget_of(args)
    if all(v is None for v in budget.values()):
        budget = {name: getattr(recipe, name) for name in BUDGETS}
    return budget


def add_pretrained_arguments(group: Any, *, target: bool = False) -> None:
    """``--embeddings FILE`` (and ``--target-embeddings``) plus ``--freeze-embeddings``, for the
    training commands of models with embedding layers."""
    side = "source " if target else ""
    group.add_argument(
        "--embeddings",
        metavar="FILE",
        help=f"start the {side}embedding layer from word vectors (word2vec text/binary or GloVe); "
        "the embedding size becomes the vectors' size",
    )
    if target:
        group.add_argument(
            "--target-embeddings", metavar="FILE", help="the same for the target embedding layer"
        )
    group.add_argument(
        "--freeze-embeddings",
        action="store_true",
        help="keep the embeddings started from word vectors fixed during training",
    )


def add_force_argument(parser: Any, what: str = "image") -> None:
    """``--force``: let an output option replace an existing file rnnkit did not write
    (:func:`rnnkit.files.check_output_file`; inputs and run files are never replaced)."""
    parser.add_argument(
        "--force", action="store_true",
        help=f"replace an existing output file even if it is not an {what} rnnkit wrote "
        "(never an input or a file in a run directory)",
    )  # fmt: skip


def add_process_arguments(parser: argparse.ArgumentParser) -> None:
    """``--quiet`` and ``--threads`` of the commands that train."""
    parser.add_argument("--quiet", action="store_true", help="no progress bar or progress lines")
    add_threads_argument(parser)


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """``--threads``, for every command that computes (its handler calls :func:`set_threads`)."""
    parser.add_argument(
        "--threads",
        type=POSITIVE,
        help="torch CPU threads (default: torch's; 1 can be faster for small models on a busy "
        "machine)",
    )


DEFAULT_ENCODING = "utf-8"  # of a user's text files (a byte-order mark decides over it)


def encoding_name(text: str) -> str:
    """An argparse ``type`` for ``--encoding``: a Python text codec (``latin-1``, ``cp1252``,
    ``utf-16-le``, ...), kept as given."""
    try:
        codecs.lookup(text)  # LookupError for an unknown name ...
        "".encode(text)  # ... and for the codecs that are not text encodings (base64, rot13)
    except LookupError:
        raise argparse.ArgumentTypeError(
            f"unknown text encoding {text!r}; give a Python codec name such as utf-8, latin-1, "
            "cp1252 or utf-16-le"
        ) from None
    return text


def add_encoding_argument(
    parser: Any, files: str = "--data", default: str = DEFAULT_ENCODING
) -> None:
    """``--encoding``, for every command that reads a user's text file (``files``: which ones,
    for the help); the reader is :func:`rnnkit.data.read_text_file`."""
    parser.add_argument(
        "--encoding",
        type=encoding_name,
        default=default,
        help=f"encoding of {files}, e.g. latin-1, cp1252, utf-16-le (default: %(default)s; a "
        "UTF-8 or UTF-16 byte-order mark decides over utf-8)",
    )


def set_threads(args: argparse.Namespace) -> None:
    """Apply ``--threads`` if given."""
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def reporter(args: argparse.Namespace) -> Callable[[str], None]:
    """Where a command's progress lines go: stderr, or nowhere with ``--quiet`` (and, under a
    launch of several processes, nowhere but from rank 0)."""
    other_rank = "WORLD_SIZE" in os.environ and os.environ.get("RANK", "0") != "0"
    if getattr(args, "quiet", False) or other_rank:
        return lambda message: None

    def report(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    return report


def add_runtime_arguments(parser: argparse.ArgumentParser, *, launch: bool = True) -> None:
    """``--device``, ``--precision`` (and for training ``--nproc``, ``--port``); the defaults are
    :class:`rnnkit.training.config.Runtime`'s (see docs/distributed.md)."""
    from rnnkit.training.config import DEVICES, PRECISIONS, Runtime

    d = Runtime()
    group = parser.add_argument_group("device and processes")
    group.add_argument("--device", choices=DEVICES, default=d.device, help="where to compute")
    group.add_argument(
        "--precision", choices=PRECISIONS, default=d.precision, help="autocast precision"
    )
    if launch:
        group.add_argument(
            "--nproc", type=int, default=d.nproc,
            help="training processes on this machine (torch's elastic launcher, as torchrun); "
            "--batch-size stays the global batch",
        )  # fmt: skip
        group.add_argument(
            "--port", type=int, default=d.port, help="rendezvous port of --nproc (0: a free one)"
        )


def runtime_of(args: argparse.Namespace) -> Any:
    """The :class:`rnnkit.training.config.Runtime` the options describe, its device and
    precision checked (one line naming what to pass instead, before any run is read)."""
    from rnnkit.training.config import Runtime
    from rnnkit.training.distributed import check_runtime

    runtime = Runtime(
        device=args.device, precision=args.precision, nproc=getattr(args, "nproc", 1),
        port=getattr(args, "port", 0),
    )  # fmt: skip
    check_runtime(runtime, world_size=runtime.nproc)
    return runtime


def launched(args: argparse.Namespace) -> int | None:
    """Start ``--nproc`` workers running this same command and return their exit status, or
    None to train in this process. Under a launch (torchrun's ``WORLD_SIZE`` set), only rank 0
    prints to stdout."""
    from rnnkit.training.distributed import check_runtime

    runtime = runtime_of(args)
    world_size = int(os.environ.get("WORLD_SIZE", runtime.nproc))
    new_run = getattr(args, "resume", None) is None  # a resumed run keeps its own batch size
    batch_size = getattr(args, "batch_size", None) if new_run else None
    check_runtime(runtime, world_size=world_size, batch_size=batch_size)
    if "WORLD_SIZE" in os.environ:
        if runtime.nproc > 1:
            from rnnkit.errors import ConfigError

            raise ConfigError("--nproc starts its own processes; drop it when using torchrun")
        if os.environ.get("RANK", "0") != "0":
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the process's lifetime)
        from rnnkit.training.distributed import join_launch

        join_launch(runtime)
        return None
    if runtime.nproc == 1:
        return None
    from rnnkit.training.launch import launch

    return launch(args.argv, runtime.nproc, port=runtime.port)
