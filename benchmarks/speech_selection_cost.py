"""The CPU cost of one checkpoint selection on the validation WER (``--selection wer``): the
kept weights of a speech run transcribe the first ``--utterances`` validation utterances
greedily, as the trainer does at every validation; beside it, the CTC loss on the trainer's 200
validation utterances, which every validation computes either way.

    python benchmarks/speech_selection_cost.py RUN_DIR --utterances 1000 --threads 1

Features are computed once, before the clock starts (the trainer computes them once per run).
Process CPU seconds per call, median of ``--repeats``; the WER also shows that the score is the
greedy WER of those utterances (benchmarks/speech_gap.py --utterances N reports the same).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time

import torch

from rnnkit.speech import api
from rnnkit.speech.data import featurize
from rnnkit.speech.recipe import SpeechRecipe
from rnnkit.speech.task import SpeechTask


def cpu_seconds(call, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.process_time()
        call()
        times.append(time.process_time() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", metavar="RUN_DIR")
    parser.add_argument("--utterances", type=int, default=1000, help="selection utterances")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.utterances < 1 or args.repeats < 1 or args.threads < 1:
        print("speech_selection_cost.py: error: counts must be >= 1", file=sys.stderr)
        sys.exit(2)
    torch.set_num_threads(args.threads)
    asr = api.load(args.run)
    recipe = SpeechRecipe.from_dict(asr.config["recipe"])
    n = max(args.utterances, recipe.valid_utterances)
    items = api.corpus(dataclasses.replace(recipe, valid_utterances=n), with_flite=False)["valid"]
    examples = featurize(items, asr.alphabet, asr.features, stats=asr.stats)
    task = SpeechTask({"train": examples, "valid": examples[: recipe.valid_utterances]},
                      batch_frames=recipe.batch_frames, seed=0, augment=None,
                      selection=examples[: args.utterances], alphabet=asr.alphabet)  # fmt: skip
    with torch.no_grad():
        score = task.selection_score(asr.model)
        select = cpu_seconds(lambda: task.selection_score(asr.model), args.repeats)
        loss = cpu_seconds(lambda: task.evaluate(asr.model, "valid"), args.repeats)
    words = sum(len(e.text.split()) for e in examples[: args.utterances])
    row = {
        "run": args.run, "threads": torch.get_num_threads(), "repeats": args.repeats,
        "load_average": os.getloadavg(), "selection_utterances": args.utterances,
        "words": words, "wer": score.value, "wrong": round(score.value * words),
        "selection_cpu_s": select, "selection_cpu_s_median": statistics.median(select),
        "loss_utterances": recipe.valid_utterances, "loss_cpu_s": loss,
        "loss_cpu_s_median": statistics.median(loss),
    }  # fmt: skip
    print(json.dumps(row, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            f.write(json.dumps(row, indent=1) + "\n")


if __name__ == "__main__":
    main()
