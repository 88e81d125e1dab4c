"""The layer options and the parallel-scan layers against the plain layers, side by side in one run.

Table 1, at the layer benchmark's shapes (``benchmarks/layers.py``): forward+backward time of an
rnnkit LSTM/GRU with each option (``layer_norm``, ``zoneout``, ``recurrent_dropout``,
``weight_drop``, in training mode) against the plain rnnkit layer (time loop in C), the plain layer
with its time loop in PyTorch (the loop the option kernels use) and torch.nn. Table 2: MinGRU and
MinLSTM against rnnkit's GRU and LSTM at T=256, B=32, H=512, in tokens per second of training
(forward+backward), with the C sweep (the default) and on the torch path
(``impl='rnnkit-pytorch'``). Implementations are interleaved in every repeat, so that a loaded
machine slows them alike; times are medians. ``+weight_drop, unfused`` is weight drop as the layers
ran it before its mask moved into the kernels' weight gradient (a ``drop_connect`` node in front of
the plain kernels; still the fallback where they do not run eagerly), beside the current one.

    python benchmarks/cells.py --minutes 10              # the full run (on a quiet machine)
    python benchmarks/cells.py --minutes 2 --threads 1   # a short run
    python benchmarks/cells.py --minutes 3 --cpu-time --threads 1 --only-scan
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
import rnnkit.nn as rnn  # noqa: E402
from rnnkit.nn import options  # noqa: E402

SHAPES = {"large": (100, 64, 512, 512), "small": (50, 16, 128, 128), "batch1": (32, 1, 256, 512)}
OPTIONS = {
    "layer_norm": {"layer_norm": True},
    "zoneout": {"zoneout": 0.1},
    "recurrent_dropout": {"recurrent_dropout": 0.25},
    "weight_drop": {"weight_drop": 0.5},
}
SCAN_SHAPE = (256, 32, 512, 512)  # T, B, I, H of the MinGRU target
CURVE_STEPS = (32, 64, 128, 256, 512)  # sequence lengths of the figure (B=16, I=H=256)


# The clock of every measurement and budget: wall time, or with --cpu-time this process's CPU
# time (robust to other processes on a shared machine; with several threads it adds up their work).
CLOCK = {"clock": time.perf_counter}


def bench_interleaved(fns: dict, seconds: float, min_repeats: int = 3) -> dict:
    """Median milliseconds of each function (see :func:`interleaved_times`)."""
    times = interleaved_times(fns, seconds, min_repeats)
    return {name: statistics.median(t) for name, t in times.items()}


def interleaved_times(fns: dict, seconds: float, min_repeats: int = 3) -> dict[str, list[float]]:
    """Milliseconds of each function in every repeat; repeats (all functions, rotating order)
    until ``seconds`` have passed and at least ``min_repeats`` were made, after one warm-up
    round."""
    clock = CLOCK["clock"]
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    start, r = clock(), 0
    while r < min_repeats or clock() - start < seconds:
        names = list(fns)
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t0 = clock()
            fns[name]()
            times[name].append((clock() - t0) * 1e3)
        r += 1
    return times


def train_step(layer: torch.nn.Module, x: torch.Tensor):
    """One forward+backward of ``layer`` on ``x`` (gradients dropped each time)."""

    def run():
        out, _ = layer(x)
        out.sum().backward()
        layer.zero_grad(set_to_none=True)

    return run


def unfused_train_step(layer: torch.nn.Module, x: torch.Tensor):
    """``train_step`` with weight drop as before the mask moved into the kernels' gradient: the
    path the layers still take where the kernels do not run eagerly (``drop_connect``'s node:
    the mask into a copy, then backward masking dL/dW_hh in a second pass)."""
    step = train_step(layer, x)

    def run():
        eager = options.dispatch.eager
        options.dispatch.eager = lambda tensors: False  # the layers' fallback for weight drop
        try:
            step()
        finally:
            options.dispatch.eager = eager

    return run


def option_table(seconds_each: float, shapes: list[str]) -> list[str]:
    """Per variant: the median time, its ratio to the plain rnnkit layer's median and to the
    PyTorch loop's, and the median of the per-repeat ratios to the plain layer (each measured in
    the same round, which a machine whose load changes over the run disturbs less)."""
    lines = []
    head = (f"{'layer':5} {'shape':7} {'variant':22} {'ms':>9} {'x rnnkit':>9} "
            f"{'x rnnkit-py':>12} {'paired x':>9} {'repeats':>8}")  # fmt: skip
    lines.append(head)
    for kind, ours_cls, torch_cls in (("LSTM", rnn.LSTM, torch.nn.LSTM),
                                      ("GRU", rnn.GRU, torch.nn.GRU)):  # fmt: skip
        for shape_name in shapes:
            steps, batch, inp, hidden = SHAPES[shape_name]
            torch.manual_seed(0)
            x = torch.randn(steps, batch, inp)
            layers = {
                "torch.nn": torch_cls(inp, hidden),
                "rnnkit": ours_cls(inp, hidden),
                "rnnkit-pytorch": ours_cls(inp, hidden, impl="rnnkit-pytorch"),
            }
            for name, kw in OPTIONS.items():
                layers[f"+{name}"] = ours_cls(inp, hidden, **kw)
            runs = {k: train_step(v, x) for k, v in layers.items()}
            runs["+weight_drop, unfused"] = unfused_train_step(
                ours_cls(inp, hidden, **OPTIONS["weight_drop"]), x
            )
            times = interleaved_times(runs, seconds_each)
            ms = {name: statistics.median(t) for name, t in times.items()}
            for name, value in ms.items():
                paired = statistics.median(a / b for a, b in zip(times[name], times["rnnkit"]))
                lines.append(
                    f"{kind:5} {shape_name:7} {name:22} {value:9.2f} "
                    f"{value / ms['rnnkit']:9.2f} {value / ms['rnnkit-pytorch']:12.2f} "
                    f"{paired:9.3f} {len(times[name]):8d}"
                )
    return lines


def scan_table(seconds: float) -> list[str]:
    steps, batch, inp, hidden = SCAN_SHAPE
    torch.manual_seed(0)
    x = torch.randn(steps, batch, inp)
    layers = {
        "GRU (rnnkit)": rnn.GRU(inp, hidden),
        "LSTM (rnnkit)": rnn.LSTM(inp, hidden),
        "MinGRU": rnn.MinGRU(inp, hidden),
        "MinLSTM": rnn.MinLSTM(inp, hidden),
        # The same layers on the torch path (coefficients in torch ops, the parallel scan).
        "MinGRU (torch)": rnn.MinGRU(inp, hidden, impl="rnnkit-pytorch"),
        "MinLSTM (torch)": rnn.MinLSTM(inp, hidden, impl="rnnkit-pytorch"),
    }
    ms = bench_interleaved({k: train_step(v, x) for k, v in layers.items()}, seconds)
    tokens = steps * batch
    lines = [f"{'layer':16} {'ms fwd+bwd':>11} {'tokens/s':>10} {'x GRU':>7}"]
    for name, value in ms.items():
        rate = tokens / value * 1e3
        gru_rate = tokens / ms["GRU (rnnkit)"] * 1e3
        lines.append(f"{name:16} {value:11.1f} {rate:10.0f} {rate / gru_rate:7.2f}")
    return lines


def scan_curve(seconds: float, path: str) -> list[str]:
    """Training tokens per second against sequence length; the ratios to the GRU drawn into
    ``path``."""
    from rnnkit.plots import plot_series

    kinds = {"GRU (rnnkit)": rnn.GRU, "LSTM (rnnkit)": rnn.LSTM, "MinGRU": rnn.MinGRU,
             "MinLSTM": rnn.MinLSTM}  # fmt: skip
    rates: dict[str, list[float]] = {name: [] for name in kinds}
    for steps in CURVE_STEPS:
        torch.manual_seed(0)
        x = torch.randn(steps, 16, 256)
        fns = {name: train_step(cls(256, 256), x) for name, cls in kinds.items()}
        for name, value in bench_interleaved(fns, seconds / len(CURVE_STEPS)).items():
            rates[name].append(steps * 16 / value * 1e3)
    # Ratios to the GRU measured in the same rounds: robust to the machine's load.
    base = rates["GRU (rnnkit)"]
    series = {n: (list(CURVE_STEPS), [v / b for v, b in zip(r, base)]) for n, r in rates.items()}
    plot_series(series, path, xlabel="sequence length T (B=16, I=H=256)",
                ylabel="training tokens/s relative to rnnkit's GRU", logx=True,
                title="forward+backward, interleaved, medians")  # fmt: skip
    lines = ["T      " + " ".join(f"{name:>14}" for name in kinds)]
    for i, steps in enumerate(CURVE_STEPS):
        lines.append(f"{steps:<6} " + " ".join(f"{rates[n][i]:14.0f}" for n in kinds))
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="time budget (default: 10)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    parser.add_argument("--plot", help="also draw tokens/s against T into this PNG")
    parser.add_argument("--only-plot", action="store_true", help="skip the two tables")
    parser.add_argument("--no-scan", action="store_true", help="skip the parallel-scan table")
    parser.add_argument("--only-scan", action="store_true", help="only the parallel-scan table")
    parser.add_argument("--shapes", default=",".join(SHAPES),
                        help="shapes of the options table (default: %(default)s)")  # fmt: skip
    parser.add_argument("--cpu-time", action="store_true",
                        help="time in this process's CPU seconds, not wall time")  # fmt: skip
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.cpu_time:
        CLOCK["clock"] = time.process_time
    budget = args.minutes * 60
    # Each option group, the scan group and the figure get an equal share.
    shapes = args.shapes.split(",")
    if not set(shapes) <= set(SHAPES):
        parser.error(f"--shapes takes some of {', '.join(SHAPES)}, got {args.shapes}")
    if args.only_scan and (args.no_scan or args.only_plot):
        parser.error("--only-scan cannot be combined with --no-scan or --only-plot")
    tables = (0 if args.only_scan else 2 * len(shapes)) + (0 if args.no_scan else 1)
    groups = (0 if args.only_plot else tables) + (1 if args.plot else 0)
    print(
        f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}; "
        f"load before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    clock = "CPU time" if args.cpu_time else "wall time"
    print(f"# budget {args.minutes} min of {clock}; times are medians of interleaved repeats "
          "(train mode)\n")  # fmt: skip
    share = budget / groups * 0.8  # the warm-up rounds take the rest
    if not (args.only_plot or args.only_scan):
        print("## Options: forward+backward, against the plain layers", flush=True)
        for line in option_table(share, shapes):
            print(line, flush=True)
    if not (args.only_plot or args.no_scan):
        print(f"\n## Parallel scans at T, B, I, H = {SCAN_SHAPE}: training tokens per second")
        for line in scan_table(share):
            print(line, flush=True)
    if args.plot:
        print(f"\n## Training tokens/s against T (figure: {args.plot})")
        for line in scan_curve(share, args.plot):
            print(line, flush=True)
    print(f"\n# load after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
