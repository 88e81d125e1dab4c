"""Image captioning in a fixed time: attention vs no attention vs text only, on held-out scenes.

Trains the three decoders of ``rnnkit.caption`` with the default recipe (``CaptionRecipe()``)
on the synthetic scenes for ``--minutes`` each, the same data and budget, then scores each on the
test split, whose every image holds a colour-shape pair or an arrangement of shapes that no
training image shows (composition, not memory). Free-running decoding only, greedy and beam
search: corpus BLEU-4 and CIDEr-D as the COCO evaluation computes them, on all test images and
on the images with relations (2-3 objects); for the attention model, the grounding hit rate
(the most-attended cell lies on the object a colour or shape word names) beside chance.

    python benchmarks/caption.py --minutes 10 --seeds 0 1 2   # the measurement (~95 minutes)
    python benchmarks/caption.py --minutes 1 --threads 1      # a short check (~4 minutes)

``--cpu-time`` counts the budget in CPU seconds of this process instead of wall-clock seconds,
for a fairer comparison on a machine others are using. The load average is printed before and
after; run the measurement on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from lm import cpu_name, load  # the machine lines of benchmarks/lm.py (same folder)
from rnnkit.caption import api
from rnnkit.caption.recipe import CaptionRecipe

DECODERS = ("attention", "mean", "text")


def run_one(decoder: str, seed: int, args: argparse.Namespace, folder: Path) -> dict:
    """Train one decoder for the budget, evaluate it on the test split; the figures."""
    recipe = CaptionRecipe(
        decoder=decoder, encoder=args.encoder, seed=seed, max_minutes=args.minutes,
        eval_every=args.eval_every,
    )  # fmt: skip
    out = folder / f"{decoder}-s{seed}"
    clock = time.process_time if args.cpu_time else time.monotonic
    result = api.train(out, recipe=recipe, quiet=True, clock=clock)
    scores = api.evaluate(str(out), split="test", beam_size=args.beam, limit=args.limit)
    row = {"decoder": decoder, "seed": seed, "steps": result.steps}
    for name in ("greedy", "beam"):
        part = scores[name]
        row[f"{name}_bleu4"] = 100 * part["bleu"][3]
        row[f"{name}_cider"] = 100 * part["cider_d"]
        relations = part["subsets"]["relations"]
        row[f"{name}_rel_bleu4"] = 100 * relations["bleu"][3]
        row[f"{name}_rel_cider"] = 100 * relations["cider_d"]
        ground = part.get("grounding")
        if ground and ground["words"]:
            row[f"{name}_hit"] = 100 * ground["hit_rate"]
            row[f"{name}_chance"] = 100 * ground["chance"]
        row[f"{name}_example"] = part["examples"][0]
    return row


def mean(rows: list[dict], key: str) -> str:
    values = [r[key] for r in rows if key in r]
    if not values:
        return "-"
    digits = 0 if all(isinstance(v, int) for v in values) else 1
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f}±{statistics.stdev(values):.{digits}f}"


def print_table(rows: list[dict], beam: int) -> None:
    columns = [
        ("steps", "steps"),
        ("greedy_bleu4", "B4 greedy"),
        ("greedy_cider", "CIDEr-D greedy"),
        ("beam_bleu4", f"B4 beam{beam}"),
        ("beam_cider", f"CIDEr-D beam{beam}"),
        ("beam_rel_bleu4", "B4 relations"),
        ("beam_rel_cider", "CIDEr-D relations"),
        ("beam_hit", "grounding %"),
        ("beam_chance", "chance %"),
    ]
    print("| decoder | " + " | ".join(title for _, title in columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for decoder in DECODERS:
        mine = [r for r in rows if r["decoder"] == decoder]
        if mine:
            print(f"| {decoder} | " + " | ".join(mean(mine, key) for key, _ in columns) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="budget per model")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0], help="seeds (weights, batches)"
    )
    parser.add_argument("--decoders", nargs="+", default=list(DECODERS), choices=DECODERS)
    parser.add_argument("--encoder", default="cnn", help="cnn or efficientnet-lite0")
    parser.add_argument("--beam", type=int, default=3, help="beam width besides greedy")
    parser.add_argument("--limit", type=int, help="score only the first N test images")
    parser.add_argument("--eval-every", type=int, default=500, help="validate every N steps")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--cpu-time", action="store_true", help="budget in CPU seconds")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument(
        "--table", nargs="+", metavar="JSON", help="only print the table of rows saved by --json"
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.table:
        print_table([row for name in args.table for row in json.loads(Path(name).read_text())],
                    args.beam)  # fmt: skip
        return 0
    torch.set_num_threads(args.threads)
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs; torch {torch.__version__}, "
          f"{args.threads} thread(s); python {sys.version.split()[0]}")  # fmt: skip
    print(f"budget: {args.minutes} min per model ({'CPU' if args.cpu_time else 'wall-clock'})"
          f"; seeds {args.seeds}; load average before: {load()}")  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory(prefix="rnnkit-caption-bench-") as tmp:
        for seed in args.seeds:
            for decoder in args.decoders:
                row = run_one(decoder, seed, args, Path(tmp))
                rows.append(row)
                print(f"  {decoder} seed {seed}: {row['steps']} steps, "
                      f"CIDEr-D {row['beam_cider']:.1f}; e.g. \"{row['beam_example']}\"",
                      flush=True)  # fmt: skip
    print(f"load average after: {load()}")
    print("\ntest split (held-out compositions), free-running decoding, scores x100, mean over "
          f"seeds {args.seeds}:")  # fmt: skip
    print_table(rows, args.beam)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
