"""CPU seconds of one checkpoint selection (greedy CIDEr-D of N validation pictures) beside one
validation loss, for saved caption runs (``caption.py --keep``): what choosing the kept weights
on CIDEr-D costs inside a training budget. One thread; nothing is trained or written.

    python benchmarks/caption_selection_cost.py RUN [RUN ...] --pictures 250 500
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from lm import load  # the load average (benchmarks/lm.py, same folder)
from rnnkit.caption import api
from rnnkit.caption.recipe import CaptionRecipe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="caption run directories")
    parser.add_argument("--pictures", type=int, nargs="+", default=[250, 500])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"1 thread; load average before: {load()}")
    for run in args.runs:
        captioner = api.load(run)
        recipe = CaptionRecipe(**{**captioner.recipe.__dict__, "selection": "cider-d"})
        splits = api._load_splits(recipe)
        for n in args.pictures:
            task = api.build_task(
                CaptionRecipe(**{**recipe.__dict__, "selection_images": n}), splits,
                captioner.vocab, 0,
            )  # fmt: skip
            start = time.process_time()
            with torch.no_grad():
                score = task.selection_score(captioner.model.eval())
            print(f"{run}: {n} pictures, CIDEr-D {100 * score.value:.1f}, "
                  f"{time.process_time() - start:.2f} CPU-s", flush=True)  # fmt: skip
        start = time.process_time()
        with torch.no_grad():
            loss = task.evaluate(captioner.model, "valid")
        print(f"{run}: validation loss {loss:.4f}, {time.process_time() - start:.2f} CPU-s")
    print(f"load average after: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
