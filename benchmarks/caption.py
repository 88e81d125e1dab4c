"""Image captioning in a fixed time: attention vs no attention vs text only, on held-out scenes.

Trains the three decoders of ``rnnkit.caption`` with the default recipe (``CaptionRecipe()``)
on the synthetic scenes for ``--minutes`` each, the same data and budget, then scores each on the
test split, whose every image holds a colour-shape pair or an arrangement of shapes that no
training image shows (composition, not memory). Free-running decoding only, greedy and beam
search: corpus BLEU-4 and CIDEr-D as the COCO evaluation computes them, on all test images, on
those with one object and on those with relations (2-3 objects), where also how often the
caption states a true relation and, of the relations between two objects named right, how many
point the right way; for the attention model, the grounding hit rate (the
most-attended cell lies on the object a colour or shape word names) beside chance. Beam search
is scored as captioning decodes by default (re-ranked by consensus) and, beside it, not
re-ranked (the beam's most probable caption).

    python benchmarks/caption.py --minutes 10 --seeds 0 1 2   # the measurement (~95 minutes)
    python benchmarks/caption.py --minutes 1 --threads 1      # a short check (~4 minutes)
    python benchmarks/caption.py --minutes 4 --cpu-time --threads 1 --decoders attention \
        --curve --eval-every 250 --set deep_output=False        # the validation curve
    python benchmarks/caption.py --minutes 3 --cpu-time --threads 1 --decoders attention \
        --split valid --set "glimpse_positions='none'"         # choosing on validation

``--curve`` keeps the weights of every validation and decodes each on the *validation* split
(greedy): the curve of CIDEr-D and of how often a held-out colour-shape pair ("red square") is
named, beside the teacher-forced validation loss; no test score. ``--set FIELD=VALUE`` changes a
field of the recipe (a Python literal: ``--set attention_penalty=0.0 deep_output=True``).

``--cpu-time`` counts the budget in CPU seconds of this process instead of wall-clock seconds,
for a fairer comparison on a machine others are using. The load average is printed before and
after; run the measurement on a quiet machine.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from lm import cpu_name, load  # the machine lines of benchmarks/lm.py (same folder)
from rnnkit.caption import api, scenes
from rnnkit.caption.encoders import model_inputs
from rnnkit.caption.recipe import CaptionRecipe
from rnnkit.training import loop

DECODERS = ("attention", "mean", "text")


def run_one(decoder: str, seed: int, args: argparse.Namespace, folder: Path) -> dict:
    """Train one decoder for the budget, evaluate it on the test split; the figures."""
    out = folder / f"{decoder}-s{seed}"
    result = api.train(out, recipe=recipe_of(decoder, seed, args), quiet=True, clock=clock_of(args))
    scores = api.evaluate(str(out), split=args.split, beam_size=args.beam, limit=args.limit)
    # The beam's most probable caption, not re-ranked (the captioning default re-ranks it).
    scores["plain"] = api.evaluate(
        str(out), split=args.split, beam_size=args.beam, limit=args.limit, rerank="none"
    )["beam"]
    row = {"decoder": decoder, "seed": seed, "steps": result.steps, "best_step": result.best_step,
           "selected_on": result.selected_on or "loss"}  # fmt: skip
    for name in ("greedy", "beam", "plain"):
        part = scores[name]
        row[f"{name}_one_cider"] = 100 * part["subsets"]["one object"]["cider_d"]
        row[f"{name}_relation_right"] = 100 * part["subsets"]["relations"]["relation_right"]
        row[f"{name}_bleu4"] = 100 * part["bleu"][3]
        row[f"{name}_cider"] = 100 * part["cider_d"]
        relations = part["subsets"]["relations"]
        row[f"{name}_rel_bleu4"] = 100 * relations["bleu"][3]
        row[f"{name}_rel_cider"] = 100 * relations["cider_d"]
        if relations["direction_right"] is not None:  # of the relations between objects named right
            row[f"{name}_direction_right"] = 100 * relations["direction_right"]
            row[f"{name}_relations_named"] = relations["relations_named"]
        ground = part.get("grounding")
        if ground and ground["words"]:
            row[f"{name}_hit"] = 100 * ground["hit_rate"]
            row[f"{name}_chance"] = 100 * ground["chance"]
        row[f"{name}_example"] = part["examples"][0]
    return row


def recipe_of(decoder: str, seed: int, args: argparse.Namespace) -> CaptionRecipe:
    """The default recipe with this run's decoder, seed, budget and ``--set`` changes."""
    changes = {}
    for item in args.set:
        name, _, value = item.partition("=")
        changes[name] = ast.literal_eval(value)
    return CaptionRecipe(
        decoder=decoder, encoder=args.encoder, seed=seed, max_minutes=args.minutes,
        eval_every=args.eval_every, **changes,
    )  # fmt: skip


def clock_of(args: argparse.Namespace) -> Callable[[], float]:
    """The seconds counter of the budget."""
    return time.process_time if args.cpu_time else time.monotonic


def held_out_pairs_named(texts: list[str], objects: list[list[scenes.SceneObject]]) -> float:
    """The fraction of held-out colour-shape objects whose pair ("red square") a caption names."""
    named = total = 0
    for text, objs in zip(texts, objects):
        for o in objs:
            if (o.colour, o.shape) in scenes.HELD_OUT_PAIRS:
                total += 1
                named += f" {o.colour} {o.shape} " in f" {text} "
    return named / max(total, 1)


def run_curve(decoder: str, seed: int, args: argparse.Namespace, folder: Path) -> list[dict]:
    """Train, keeping the weights of every validation; the validation scores of each."""
    kept = []
    watched: list[loop.Trainer] = []

    def keep(trainer: loop.Trainer) -> None:
        watched[:] = [trainer]
        every = trainer.config.eval_every
        if every and trainer.step % every == 0:  # the trainer validated at this step
            kept.append(
                (trainer.step, trainer.last_valid, copy.deepcopy(trainer.model.state_dict()))
            )

    out = folder / f"{decoder}-s{seed}"
    recipe = recipe_of(decoder, seed, args)
    api.train(out, recipe=recipe, quiet=True, clock=clock_of(args), on_step=keep)
    trainer = watched[0]
    if not kept or kept[-1][0] != trainer.step:  # the final validation, after the last step
        kept.append((trainer.step, trainer.last_valid, copy.deepcopy(trainer.model.state_dict())))
    captioner = api.load(out)
    valid = scenes.load_scenes("valid", recipe.scenes[1], seed=recipe.scene_seed,
                               size=recipe.image_size)  # fmt: skip
    inputs = model_inputs(valid.images, recipe.encoder)
    rows = []
    for step, loss, weights in kept:
        captioner.model.load_state_dict(weights)
        texts = [" ".join(captioner.vocab.decode(h[0].tokens))
                 for h in api.decode(captioner, inputs, beam_size=1)]  # fmt: skip
        scores = api.evaluate(captioner, split="valid", beam_size=1)["greedy"]
        rows.append({
            "decoder": decoder, "seed": seed, "step": step, "valid_loss": loss,
            "cider": 100 * scores["cider_d"],
            "rel_cider": 100 * scores["subsets"]["relations"]["cider_d"],
            "one_cider": 100 * scores["subsets"]["one object"]["cider_d"],
            "pairs_named": 100 * held_out_pairs_named(texts, valid.objects),
        })  # fmt: skip
        r = rows[-1]
        print(f"  {decoder} seed {seed} step {step}: valid loss {loss:.4f}, "
              f"CIDEr-D {r['cider']:.1f} (one object {r['one_cider']:.1f}, relations "
              f"{r['rel_cider']:.1f}), held-out pairs named {r['pairs_named']:.1f}%",
              flush=True)  # fmt: skip
    return rows


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
        ("best_step", "kept step"),
        ("greedy_bleu4", "B4 greedy"),
        ("greedy_cider", "CIDEr-D greedy"),
        ("beam_bleu4", f"B4 beam{beam}"),
        ("beam_cider", f"CIDEr-D beam{beam}"),
        ("plain_cider", f"CIDEr-D beam{beam} not re-ranked"),
        ("beam_one_cider", "CIDEr-D one object"),
        ("beam_rel_bleu4", "B4 relations"),
        ("beam_rel_cider", "CIDEr-D relations"),
        ("beam_relation_right", "relation right %"),
        ("beam_direction_right", "direction right %"),
        ("plain_rel_cider", f"CIDEr-D relations beam{beam} not re-ranked"),
        ("plain_one_cider", f"CIDEr-D one object beam{beam} not re-ranked"),
        ("greedy_rel_cider", "CIDEr-D relations greedy"),
        ("greedy_direction_right", "direction right % greedy"),
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
    parser.add_argument("--limit", type=int, help="score only the first N images")
    parser.add_argument("--split", default="test", choices=("valid", "test"),
                        help="the split scored (choose on valid, report test once)")  # fmt: skip
    parser.add_argument("--eval-every", type=int, default=500, help="validate every N steps")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--cpu-time", action="store_true", help="budget in CPU seconds")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="change recipe fields (Python literals)")  # fmt: skip
    parser.add_argument("--curve", action="store_true",
                        help="the validation curve instead of the test table")  # fmt: skip
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--keep", help="train the runs into this folder and keep them")
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
    if args.set:
        print(f"recipe changes: {' '.join(args.set)}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="rnnkit-caption-bench-") as tmp:
        folder = Path(args.keep or tmp)
        for seed in args.seeds:
            for decoder in args.decoders:
                if args.curve:
                    rows += run_curve(decoder, seed, args, folder)
                    continue
                row = run_one(decoder, seed, args, folder)
                rows.append(row)
                print(f"  {decoder} seed {seed}: {row['steps']} steps, "
                      f"CIDEr-D {row['beam_cider']:.1f}; e.g. \"{row['beam_example']}\"",
                      flush=True)  # fmt: skip
    print(f"load average after: {load()}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    if args.curve:
        return 0
    print(f"\n{args.split} split (held-out compositions), free-running decoding, scores x100, "
          f"mean over seeds {args.seeds}:")  # fmt: skip
    print_table(rows, args.beam)
    return 0


if __name__ == "__main__":
    sys.exit(main())
