"""Command-line pieces shared by the command groups: help layout, run location, budgets, word
vectors, threads, progress messages. Torch-free (``--help`` must not import torch).

Each group's ``cli.py`` builds its sub-commands with :func:`add_command` (so every ``--help``
shows defaults the same way) and takes its defaults from its recipe dataclass.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

BUDGETS = ("epochs", "max_steps", "max_minutes")  # a recipe's budget fields (TrainConfig's)


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
    parser.set_defaults(func=func)
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
    group.add_argument("--epochs", type=int, help="passes over the training data")
    group.add_argument("--max-steps", type=int, help="optimizer steps")
    group.add_argument(
        "--max-minutes",
        type=float,
        help=f"wall-clock budget (when no budget is given: {default})",
    )


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


def add_process_arguments(parser: argparse.ArgumentParser) -> None:
    """``--quiet`` and ``--threads`` of the commands that train."""
    parser.add_argument("--quiet", action="store_true", help="no progress bar or progress lines")
    parser.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default: torch's; 1 can be faster for small models on a busy "
        "machine)",
    )


def set_threads(args: argparse.Namespace) -> None:
    """Apply ``--threads`` if given."""
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def reporter(args: argparse.Namespace) -> Callable[[str], None]:
    """Where a command's progress lines go: stderr, or nowhere with ``--quiet``."""
    if getattr(args, "quiet", False):
        return lambda message: None

    def report(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    return report
