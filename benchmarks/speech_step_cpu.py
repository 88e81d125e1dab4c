"""CPU seconds per training step of the default speech model: what a CPU-time budget buys.

Trains the default recipe's acoustic model (no augmentation) on the first 800 training
utterances of the default corpus for ``--steps`` steps after 5 warm-up steps and prints the
process CPU time and the wall time per step. Run it with 1 and with 2 threads, and with
``OMP_WAIT_POLICY=PASSIVE``, to see whether a CPU-time budget counts work or waiting:

    python benchmarks/speech_step_cpu.py --threads 1
    python benchmarks/speech_step_cpu.py --threads 2
    OMP_WAIT_POLICY=PASSIVE python benchmarks/speech_step_cpu.py --threads 2

(benchmarks/results/speech_omp_wait.txt: at load average 4-8 on 2 cores, 97 CPU-ms per step with
one thread, 608 with two spinning threads, 98 with two sleeping ones.)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import torch

from lm import load  # benchmarks/lm.py: the load line
from rnnkit.speech import api
from rnnkit.speech.data import Alphabet, featurize
from rnnkit.speech.features import FeatureConfig
from rnnkit.speech.model import AcousticConfig, AcousticModel
from rnnkit.speech.recipe import SpeechRecipe
from rnnkit.speech.task import SpeechTask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--steps", type=int, default=80, help="timed training steps")
    parser.add_argument("--hidden-size", type=int, default=160, help="units per direction")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    recipe = dataclasses.replace(SpeechRecipe(), hidden_size=args.hidden_size)
    items = api.corpus(recipe, with_flite=False)["train"][:800]
    alphabet = Alphabet.from_texts([i.text for i in items])
    examples = featurize(items, alphabet, FeatureConfig(n_mels=recipe.n_mels))
    task = SpeechTask({"train": examples, "valid": examples[:10]},
                      batch_frames=recipe.batch_frames, seed=0, augment=None)  # fmt: skip
    model = AcousticModel(AcousticConfig.from_recipe(recipe, len(alphabet)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batches = list(task.train_batches(0, 0))

    def step(batch: object) -> None:
        loss, _, _ = task.train_loss(model, batch, None)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for batch in batches[:5]:  # warm-up: kernels compiled, memory allocated
        step(batch)
    cpu0, wall0 = time.process_time(), time.monotonic()
    for n in range(args.steps):
        step(batches[n % len(batches)])
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    policy = os.environ.get("OMP_WAIT_POLICY", "unset")
    print(f"threads {args.threads} (OMP_WAIT_POLICY={policy}), hidden {args.hidden_size}, "
          f"{args.steps} steps: {1000 * cpu / args.steps:.1f} CPU-ms/step, "
          f"{1000 * wall / args.steps:.1f} wall-ms/step; load average {load()}")  # fmt: skip


if __name__ == "__main__":
    main()
