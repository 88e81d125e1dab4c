"""Training words per CPU-second of word-level LSTM language-model shapes (``--awd`` planning).

For each shape: the model of ``rnnkit.lm`` (tied weights, plain LSTM, no dropout) trained with
AdamW on random token windows of the given vocabulary size; the CPU time (``time.process_time``,
all threads) of ``--steps`` training steps after two warm-up steps, and the words per
CPU-second and passes over the Shakespeare training split (1,220,254 words) that a budget of
``--budget`` CPU-minutes would give (evaluation not counted). Shapes are
``VOCAB:EMBED:HIDDEN:LAYERS:BATCH:BPTT``.

    python benchmarks/lm_shapes.py --threads 1 --shapes 30953:200:400:3:20:35 10001:200:400:3:20:35
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from rnnkit.lm.model import LMConfig, RNNLanguageModel

TRAIN_WORDS = 1_220_254  # words of the Shakespeare training split (word level)


def words_per_cpu_second(shape: str, steps: int) -> tuple[float, int]:
    vocab, embed, hidden, layers, batch, bptt = (int(v) for v in shape.split(":"))
    torch.manual_seed(0)
    config = LMConfig(vocab_size=vocab, cell="lstm", embedding_dim=embed, hidden_size=hidden,
                      num_layers=layers, tie_weights=True)  # fmt: skip
    model = RNNLanguageModel(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    tokens = torch.randint(0, vocab, (bptt + 1, batch))

    def step() -> None:
        loss, _ = model.loss(tokens[:-1], tokens[1:])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    for _ in range(2):
        step()
    start = time.process_time()
    for _ in range(steps):
        step()
    cpu = time.process_time() - start
    return steps * batch * bptt / cpu, sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--shapes", nargs="+", required=True, help="VOCAB:EMBED:HIDDEN:LAYERS:BATCH:BPTT"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument(
        "--budget", type=float, default=10.0, help="CPU-minutes for the passes column"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"threads {args.threads}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'shape V:E:H:L:B:T':<26} {'parameters':>11} {'words/CPU-s':>11} {'passes':>7}")
    for shape in args.shapes:
        rate, params = words_per_cpu_second(shape, args.steps)
        passes = rate * args.budget * 60 / TRAIN_WORDS
        print(f"{shape:<26} {params:>11,} {rate:>11.0f} {passes:>7.2f}", flush=True)
    print(f"load average after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
