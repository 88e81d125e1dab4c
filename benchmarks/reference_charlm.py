"""The NumPy reference trainer on a real text: each cell for the same wall time, side by side.

    python benchmarks/reference_charlm.py --minutes 2                # Shakespeare, rnn/lstm/gru
    python benchmarks/reference_charlm.py --minutes 0.2 --data sample  # a quick check

Prints, per cell, the updates and characters per second it managed and its final smoothed training
loss next to the unigram entropy of the text (the loss of a model that ignores context).
"""

from __future__ import annotations

import argparse
import os
import platform

from rnnkit.data import load_corpus
from rnnkit.reference.sample_text import SAMPLE_TEXT
from rnnkit.reference.train import TrainConfig, train_char_model, unigram_entropy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="shakespeare", help="corpus name, file, or 'sample'")
    parser.add_argument("--minutes", type=float, default=2.0, help="wall time per cell")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--cells", default="rnn,lstm,gru")
    args = parser.parse_args()

    text = SAMPLE_TEXT if args.data == "sample" else load_corpus(args.data)
    source = "built-in sample text" if args.data == "sample" else args.data
    entropy = unigram_entropy(text)
    print(f"text: {source}, {len(text):,} characters; unigram entropy {entropy:.3f} nats/char")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; "
        f"{args.minutes} min per cell, hidden {args.hidden}, windows 25 x 16 streams"
    )
    print(f"{'cell':<5} {'updates':>8} {'chars/s':>8} {'loss':>7} {'loss/entropy':>13}")
    for cell in args.cells.split(","):
        config = TrainConfig(
            cell=cell, hidden_size=args.hidden, steps=10**9, max_minutes=args.minutes
        )
        result = train_char_model(text, config)
        chars_per_s = result.steps * config.seq_length * config.batch_size / result.elapsed
        ratio = result.smooth_loss / entropy
        print(
            f"{cell:<5} {result.steps:>8} {chars_per_s:>8.0f} {result.smooth_loss:>7.3f} "
            f"{ratio:>13.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
