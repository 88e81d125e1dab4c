"""What kind of words a speech run gets wrong under greedy decoding, and whether a blank penalty
changes it. Validation sets only (the held-out espeak-ng variants and flite-valid); the test sets
are never read.

For each run directory (a synth-digits run) and ``--weights`` (as in ``speech_gap.py``: the kept
ones, or the last checkpoint's weights as trained or their moving average), decodes
``--utterances`` validation utterances and flite-valid greedily and prints:

- the words wrong split into substitutions, deletions and insertions (a word-level Levenshtein
  alignment) and how many of the hypothesis words are not words of the vocabulary at all
  (misspellings such as "nive" for "nine": a character-level model can emit them);
- the most frequent confusions (reference word -> hypothesis word, aligned);
- the same counts when the blank's log-probability is lowered by each ``--blank-penalty``
  before the argmax: a penalty trades deletions for insertions, so it can only help where
  deletions dominate.

    python benchmarks/speech_errors.py RUN_DIR [RUN_DIR ...] --weights last --utterances 2000
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import sys
from pathlib import Path

import torch

from rnnkit.speech import api
from rnnkit.speech.data import featurize
from rnnkit.speech.recipe import SpeechRecipe
from speech_gap import fail, posteriors, use_weights  # benchmarks/speech_gap.py


def align(ref: list[str], hyp: list[str]) -> list[tuple[str | None, str | None]]:
    """A minimum-edit alignment of two word lists as (ref word, hyp word) pairs; None marks
    an insertion (no ref word) or a deletion (no hyp word). Ties prefer substitutions."""
    n, m = len(ref), len(hyp)
    cost = [[i + j if i == 0 or j == 0 else 0 for j in range(m + 1)] for i in range(n + 1)]
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i][j] = min(cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]),
                             cost[i - 1][j] + 1, cost[i][j - 1] + 1)  # fmt: skip
    pairs: list[tuple[str | None, str | None]] = []
    i, j = n, m
    while i or j:
        if i and j and cost[i][j] == cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            pairs.append((ref[i - 1], hyp[j - 1]))
            i, j = i - 1, j - 1
        elif i and cost[i][j] == cost[i - 1][j] + 1:
            pairs.append((ref[i - 1], None))
            i -= 1
        else:
            pairs.append((None, hyp[j - 1]))
            j -= 1
    return pairs[::-1]


def greedy(log_probs: torch.Tensor, penalty: float) -> list[int]:
    """Best class per frame after lowering the blank's (class 0) score, repeats merged, blanks
    dropped (``greedy_decode`` at penalty 0)."""
    scores = log_probs.clone()
    scores[:, 0] -= penalty
    out, previous = [], None
    for k in scores.argmax(dim=1).tolist():
        if k != previous and k != 0:
            out.append(k)
        previous = k
    return out


def counts(refs: list[str], hyps: list[str], vocabulary: set[str]) -> dict:
    """Substitutions, deletions, insertions, non-words and confusions of ``hyps``."""
    tally = collections.Counter()
    confusions = collections.Counter()
    for ref, hyp in zip(refs, hyps):
        for r, h in align(ref.split(), hyp.split()):
            kind = "del" if h is None else "ins" if r is None else "sub" if r != h else "ok"
            tally[kind] += 1
            if kind != "ok":
                confusions[f"{r or '-'} -> {h or '-'}"] += 1
            if h is not None and h not in vocabulary:
                tally["non-words"] += 1
    words = sum(len(r.split()) for r in refs)
    wrong = tally["sub"] + tally["del"] + tally["ins"]
    return {"words": words, "wrong": wrong, "sub": tally["sub"], "del": tally["del"],
            "ins": tally["ins"], "non_words": tally["non-words"],
            "confusions": confusions.most_common(8)}  # fmt: skip


def one_run(run: str, args: argparse.Namespace) -> dict:
    asr = api.load(run)
    use_weights(asr, run, args.weights)
    recipe = SpeechRecipe.from_dict(asr.config["recipe"])
    if recipe.corpus != "synth-digits":
        fail(f"{run}: trained on {recipe.corpus}; this diagnosis is for synth-digits runs")
    items = api.corpus(dataclasses.replace(recipe, valid_utterances=args.utterances))
    vocabulary = {w for item in items["train"] for w in item.text.split()}
    row: dict = {"run": run, "weights": args.weights}
    for name in ("valid", "flite-valid"):
        examples = featurize(items[name], asr.alphabet, asr.features, stats=asr.stats)
        frames = posteriors(asr, examples)
        refs = [e.text for e in examples]
        row[name] = {}
        for penalty in args.blank_penalty:
            hyps = [asr.alphabet.decode(greedy(p, penalty)) for p in frames]
            row[name][str(penalty)] = counts(refs, hyps, vocabulary)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR")
    parser.add_argument("--utterances", type=int, default=2000, help="validation utterances")
    parser.add_argument("--weights", choices=("kept", "last", "average"), default="kept",
                        help="which weights (see speech_gap.py)")  # fmt: skip
    parser.add_argument("--blank-penalty", type=float, nargs="+",
                        default=[0.0, 0.5, 1.0, 2.0, 4.0],
                        help="nats taken from the blank log-probability before argmax")  # fmt: skip
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    if args.utterances < 1:
        parser.error(f"--utterances must be at least 1, got {args.utterances}")
    if any(p < 0 for p in args.blank_penalty):
        parser.error("--blank-penalty values must be >= 0 (a penalty lowers the blank)")
    torch.set_num_threads(args.threads)
    rows = [one_run(run, args) for run in args.runs]
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    for row in rows:
        print(f"\n{row['run']} ({row['weights']} weights)")
        for name in ("valid", "flite-valid"):
            for penalty, c in row[name].items():
                print(f"  {name:<11} blank penalty {penalty:>4}: {c['wrong']:>4} of {c['words']} "
                      f"words wrong (sub {c['sub']}, del {c['del']}, ins {c['ins']}); "
                      f"{c['non_words']} non-words")  # fmt: skip
            top = row[name][str(args.blank_penalty[0])]["confusions"]
            print(f"  {name:<11} most frequent: " + ", ".join(f"{k} ({n})" for k, n in top))


if __name__ == "__main__":
    sys.exit(main())
