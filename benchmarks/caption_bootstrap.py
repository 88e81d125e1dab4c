"""Is the attention model's larger gain on relations than on one object beyond noise?

Decodes saved runs (``caption.py --keep``) on a split of the synthetic scenes, greedy and with the
plain beam (the beam's most probable caption), and scores every picture with CIDEr-D. The
split's CIDEr-D is the mean of the per-picture scores (the document frequencies come from the
references alone), so the gains by picture kind are differences of means:

    gain(kind) = mean over the kind's pictures of (attention - baseline), each model's score
                 averaged over its seeds first (so the mean of the per-seed gains)
    difference = gain(relations) - gain(one object)

A paired bootstrap over pictures (same models, same captions; seeded) resamples the pictures
with replacement, within each kind (the kinds keep their sizes), and recomputes the difference:
its 95% interval and the share of resamples where it is <= 0 say whether relations gain more
than noise in the choice of pictures would explain. Seeds are not resampled: the spread between
seeds is another noise, printed beside it as the per-seed gains. No training; the test split is
only read, never chosen on.

    python benchmarks/caption_bootstrap.py --attention A/attention-s0 A/attention-s1 ... \\
        --baselines B/mean-s0 B/text-s0 ... --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from lm import load  # the load average (benchmarks/lm.py, same folder)
from rnnkit.caption import api, metrics, scenes
from rnnkit.caption.encoders import model_inputs

DECODINGS = {"greedy": 1, "plain beam": None}  # None: --beam, the beam's most probable caption


def scores_of(run: str, split: str, beam: int) -> dict:
    """Per-picture CIDEr-D of ``run`` on ``split``, greedy and with the plain beam."""
    captioner = api.load(run)
    if captioner.recipe.data != scenes.NAME:
        raise SystemExit(f"{run}: not a run on the synthetic scenes")
    data = api._load_splits(captioner.recipe)[split]
    inputs = model_inputs(data.images, captioner.recipe.encoder, cache=True)
    result = {
        "run": run,
        "decoder": captioner.recipe.decoder,
        "seed": captioner.recipe.seed,
        "consensus_references": captioner.recipe.consensus_k(),
        "relational": [len(objs) > 1 for objs in data.objects],
        "references": [len(refs) for refs in data.captions],
    }
    for name, width in DECODINGS.items():
        found = api.decode(captioner, inputs, beam_size=width or beam, rerank="none")
        hyps = [captioner.vocab.decode(h[0].tokens) for h in found]
        whole, per_image = metrics.cider_d(hyps, data.captions, per_image=True)
        result[name] = {"cider": 100 * whole, "per_image": [100 * c for c in per_image]}
    return result


def per_picture(runs: list[dict], decoding: str) -> np.ndarray:
    """The runs' per-picture CIDEr-D with ``decoding``: ``(runs, pictures)``."""
    return np.array([r[decoding]["per_image"] for r in runs])


def difference(gain: np.ndarray, rel: np.ndarray, one: np.ndarray) -> float:
    return float(gain[rel].mean() - gain[one].mean())


def bootstrap(gain: np.ndarray, relational: np.ndarray, resamples: int, seed: int) -> dict:
    """The difference of the kinds' mean gains and its stratified, paired bootstrap."""
    rel, one = np.flatnonzero(relational), np.flatnonzero(~relational)
    rng = np.random.default_rng(seed)
    draws = np.array([
        gain[rng.choice(rel, rel.size)].mean() - gain[rng.choice(one, one.size)].mean()
        for _ in range(resamples)
    ])  # fmt: skip
    low, high = np.percentile(draws, [2.5, 97.5])
    return {
        "gain_relations": float(gain[rel].mean()),
        "gain_one_object": float(gain[one].mean()),
        "difference": difference(gain, rel, one),
        "ci95": [float(low), float(high)],
        "share_at_most_0": float((draws <= 0).mean()),
        "sd": float(draws.std(ddof=1)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--attention", nargs="+", required=True, help="attention run folders")
    parser.add_argument("--baselines", nargs="*", default=[], help="mean/text run folders")
    parser.add_argument("--split", default="test", choices=("valid", "test"))
    parser.add_argument("--beam", type=int, default=3, help="beam width")
    parser.add_argument("--resamples", type=int, default=10000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--scores", help="per-picture scores saved by an earlier --json")
    parser.add_argument("--json", help="write the per-picture scores and the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"load average before: {load()}; {args.threads} thread(s)")
    start = time.process_time()
    if args.scores:
        runs = json.loads(Path(args.scores).read_text())["runs"]
    else:
        runs = [scores_of(r, args.split, args.beam) for r in [*args.attention, *args.baselines]]
    print(f"decoded {len(runs)} runs in {time.process_time() - start:.0f} CPU-s")
    relational = np.array(runs[0]["relational"])
    references = np.array(runs[0]["references"])
    if any(r["relational"] != runs[0]["relational"] for r in runs):
        raise SystemExit("the runs were scored on different pictures")
    print(f"{args.split} split: {relational.size} pictures; relations {relational.sum()} "
          f"pictures ({references[relational].sum()} reference captions), one object "
          f"{(~relational).sum()} pictures ({references[~relational].sum()} reference "
          "captions)")  # fmt: skip
    attention = [r for r in runs if r["decoder"] == "attention"]
    results = []
    for decoder in ("mean", "text"):
        base = [r for r in runs if r["decoder"] == decoder]
        if not base:
            continue
        for name in DECODINGS:
            a, b = per_picture(attention, name), per_picture(base, name)
            per_seed = []
            for ra, rb, sa, sb in zip(attention, base, a, b):
                gain = sa - sb
                per_seed.append({
                    "seeds": [ra["seed"], rb["seed"]],
                    "gain_relations": float(gain[relational].mean()),
                    "gain_one_object": float(gain[~relational].mean()),
                    "difference": difference(gain, relational, ~relational),
                })  # fmt: skip
            result = {
                "over": decoder, "decoding": name,
                "k": [r["consensus_references"] for r in base],
                **bootstrap(a.mean(0) - b.mean(0), relational, args.resamples, args.seed),
                "per_seed": per_seed,
            }  # fmt: skip
            results.append(result)
            seeds = "; ".join(f"seed {p['seeds'][0]}: {p['gain_relations']:+.1f} / "
                              f"{p['gain_one_object']:+.1f} ({p['difference']:+.1f})"
                              for p in per_seed)  # fmt: skip
            sds = [statistics.stdev([p[k] for p in per_seed]) if len(per_seed) > 1 else 0.0
                   for k in ("gain_relations", "gain_one_object", "difference")]  # fmt: skip
            print(f"over {decoder}, {name}: relations {result['gain_relations']:+.1f}, one object "
                  f"{result['gain_one_object']:+.1f}, difference {result['difference']:+.1f} "
                  f"(bootstrap 95% {result['ci95'][0]:+.1f} .. {result['ci95'][1]:+.1f}, "
                  f"<= 0 in {100 * result['share_at_most_0']:.2f}% of {args.resamples})\n"
                  f"    per seed (relations / one object (difference)): {seeds}; sd over seeds "
                  f"{sds[0]:.1f} / {sds[1]:.1f} ({sds[2]:.1f})")  # fmt: skip
    print(f"load average after: {load()}")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "results": results}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
