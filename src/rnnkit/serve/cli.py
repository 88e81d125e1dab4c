"""Serve a local web playground for trained runs: training curves and config of each, and a
try-it panel for its task (a language model's text with the probability of each character, a
translation's n-best list with its attention). Only the run directories named here are served."""

from __future__ import annotations

import argparse
import sys

from rnnkit.serve.recipe import ServeRecipe


def register(parser: argparse.ArgumentParser) -> None:
    """Add ``rnnkit serve``'s arguments to its parser."""
    defaults = ServeRecipe()
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories to serve")
    parser.add_argument("--port", type=int, default=defaults.port, help="TCP port")
    parser.add_argument(
        "--host", default=defaults.host,
        help="address to bind; anything but a loopback address lets other machines connect",
    )  # fmt: skip
    parser.set_defaults(func=run_serve, trailing="run_dirs")


def run_serve(args: argparse.Namespace) -> int:
    from rnnkit.errors import require_extra

    for module in ("starlette", "uvicorn"):
        require_extra(module, "serve", "the web server and page of `rnnkit serve`")
    from rnnkit.serve.app import serve

    recipe = ServeRecipe(host=args.host, port=args.port)
    serve(args.run_dirs, recipe, report=lambda line: print(line, file=sys.stderr, flush=True))
    return 0
