"""Beam search speed: one batched search over many inputs versus one search per input.

The decoder is an embedding, a multi-layer LSTM and a linear output layer with random weights, as
a language model or a translation decoder would be. There is no eos (every hypothesis runs to
``--max-length``), so both modes do exactly the same number of steps per input. Time inside
``decoder.step`` is measured by wrapping it; everything else (top-k, bookkeeping, ``reorder``) is
the search's overhead. ``--eos ID`` adds an end token, to time the bookkeeping of finished
hypotheses too (inputs then stop at different steps).

    python benchmarks/search.py                      # 64 inputs, beam 5, 2x512 LSTM, vocab 1000
    python benchmarks/search.py --inputs 8 --max-length 10   # a quick check
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from rnnkit.search import beam_search


class LSTMDecoder(torch.nn.Module):
    """Embedding + LSTM + linear output; state is the LSTM's (h, c), each (layers, N, hidden)."""

    def __init__(self, lstm: torch.nn.Module, vocab: int, hidden: int):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, hidden)
        self.lstm = lstm
        self.out = torch.nn.Linear(hidden, vocab)

    def step(self, tokens, state):
        output, state = self.lstm(self.embed(tokens)[None], state)  # (1, N, hidden)
        return torch.log_softmax(self.out(output[0]), dim=-1), state  # (N, vocab)

    def reorder(self, state, index):
        return tuple(s.index_select(1, index) for s in state)


class Timed:
    """Wraps a decoder and adds up the wall time spent in its step and reorder."""

    def __init__(self, decoder, device):
        self.decoder, self.device = decoder, device
        self.step_s = self.reorder_s = 0.0

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def step(self, tokens, state):
        self._sync()
        start = time.perf_counter()
        result = self.decoder.step(tokens, state)
        self._sync()
        self.step_s += time.perf_counter() - start
        return result

    def reorder(self, state, index):
        start = time.perf_counter()
        result = self.decoder.reorder(state, index)
        self._sync()
        self.reorder_s += time.perf_counter() - start
        return result


def make_lstm(impl: str, hidden: int, layers: int) -> torch.nn.Module:
    if impl == "torch":
        return torch.nn.LSTM(hidden, hidden, num_layers=layers)
    try:
        from rnnkit.nn import LSTM
    except ImportError as exc:
        raise SystemExit(
            f"--impl rnnkit needs rnnkit.nn.LSTM, which is not available: {exc}"
        ) from exc
    return LSTM(hidden, hidden, num_layers=layers)


def run(decoder, args, device, batch_size):
    """Decode args.inputs inputs, batch_size at a time; return (seconds, Timed, hypotheses)."""
    timed = Timed(decoder, device)
    generator = torch.Generator().manual_seed(0)
    shape = (args.layers, args.inputs, args.hidden)
    h0 = torch.randn(shape, generator=generator).to(device)
    c0 = torch.randn(shape, generator=generator).to(device)
    bos = torch.zeros(args.inputs, dtype=torch.long, device=device)
    hyps = []
    start = time.perf_counter()
    for first in range(0, args.inputs, batch_size):
        rows = torch.arange(first, min(first + batch_size, args.inputs), device=device)
        state = decoder.reorder((h0, c0), rows)
        hyps += beam_search(timed, state, bos[rows], args.eos, args.beam, args.max_length)
    return time.perf_counter() - start, timed, hyps


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=64)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--max-length", type=int, default=50)
    parser.add_argument("--eos", type=int, default=None, help="end token (default: none)")
    parser.add_argument("--vocab", type=int, default=1000)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--impl", choices=["torch", "rnnkit"], default="torch")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    decoder = LSTMDecoder(make_lstm(args.impl, args.hidden, args.layers), args.vocab, args.hidden)
    decoder = decoder.to(device).eval()

    with torch.inference_mode():
        run(decoder, args, device, args.inputs)  # warm-up
        results = {
            "batched": run(decoder, args, device, args.inputs),
            "one at a time": run(decoder, args, device, 1),
        }

    print(
        f"beam search: {args.inputs} inputs, beam {args.beam}, {args.max_length} steps, "
        f"{args.layers}x{args.hidden} LSTM ({args.impl}), vocab {args.vocab}, eos {args.eos}"
    )
    print(
        f"machine: {platform.machine()} {platform.processor() or ''}, device {device}, "
        f"torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}, torch {torch.__version__}"
    )
    print(f"{'mode':<14} {'total s':>9} {'step s':>9} {'reorder s':>10} {'outside step':>13}")
    for mode, (total, timed, _) in results.items():
        outside = (total - timed.step_s) / total
        print(
            f"{mode:<14} {total:>9.3f} {timed.step_s:>9.3f} {timed.reorder_s:>10.3f} "
            f"{outside:>12.1%}"
        )
    batched, single = results["batched"], results["one at a time"]
    same = sum(a[0].tokens == b[0].tokens for a, b in zip(batched[2], single[2]))
    print(f"speed-up, batched vs one at a time: {single[0] / batched[0]:.1f}x")
    print(f"inputs whose best hypothesis is identical in both modes: {same}/{args.inputs}")


if __name__ == "__main__":
    main()
