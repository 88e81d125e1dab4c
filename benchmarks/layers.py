"""rnnkit's recurrent layers against torch.nn, measured side by side in one run.

For LSTM, GRU and RNN at three shapes, times forward (with autograd recording), forward+backward and
inference (no grad) for rnnkit's own kernels and for torch.nn with oneDNN on and off, interleaving
the implementations so that a loaded machine slows them alike. GFLOP/s use the usual counts per
token forward: LSTM 8H(I+H), GRU 6H(I+H), RNN 2H(I+H), three times that for forward+backward; the
share is against the measured float32 matrix-product rate of the machine. A last table gives the
latency of one generation step (B=1, one time step through a 2-layer 512 LSTM, no grad).

    python benchmarks/layers.py                 # full table (a few minutes on 2 cores)
    python benchmarks/layers.py --quick         # fewer repeats, for a smoke test
    python benchmarks/layers.py --json out.json --threads 2 --repeats 7
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
import rnnkit.nn as rnn  # noqa: E402

SHAPES = {"large": (100, 64, 512, 512), "small": (50, 16, 128, 128), "batch1": (32, 1, 256, 512)}
FLOPS_PER_TOKEN = {"LSTM": 8, "GRU": 6, "RNN": 2}  # times H * (I + H)
MODES = ("fwd", "fwd+bwd", "infer")
# rnnkit: own kernels (time loop in C when it builds); rnnkit-pytorch: own kernels, time loop in
# PyTorch; torch: torch.nn (oneDNN on); torch-nodnn: torch.nn with oneDNN disabled.
IMPLS = ("rnnkit", "rnnkit-pytorch", "torch", "torch-nodnn")


def _timed(fn, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1e3


def _bench(fns: dict, device, warmup: int, repeats: int, stat=statistics.median) -> dict:
    """Milliseconds of each function (median, or ``stat``, over the repeats), interleaved: every
    repeat runs all of them, in a rotating order."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(repeats):
        names = list(fns)
        names = names[r % len(names) :] + names[: r % len(names)]  # rotate the order too
        for name in names:
            times[name].append(_timed(fns[name], device))
    return {name: stat(t) for name, t in times.items()}


def _with_dnn(enabled: bool, fn):
    def run():
        with torch.backends.mkldnn.flags(enabled=enabled):
            fn()

    return run


def matmul_gflops(device, dtype, warmup: int, repeats: int) -> float:
    """Measured rate of a representative matrix product: (6400, 512) x (512, 2048), the input
    projection of the large LSTM shape."""
    a = torch.randn(6400, 512, device=device, dtype=dtype)
    b = torch.randn(512, 2048, device=device, dtype=dtype)
    ms = _bench({"mm": lambda: torch.mm(a, b)}, device, warmup, repeats)["mm"]
    return 2 * 6400 * 512 * 2048 / ms / 1e6


def _models(ours_cls, torch_cls, args, kw) -> dict:
    """One model per implementation, all with the same weights."""
    theirs = torch_cls(*args, **kw)
    models = {}
    for impl in IMPLS:
        if impl.startswith("rnnkit"):
            models[impl] = ours_cls(*args, impl=impl, **kw)
            models[impl].load_state_dict(theirs.state_dict())
        else:
            models[impl] = theirs
    return models


def layer_fns(kind: str, shape, device, dtype) -> dict[tuple[str, str], object]:
    """Closures running each (implementation, mode) once on the same weights and input."""
    steps, batch, inp, hidden = shape
    cls = {"LSTM": rnn.LSTM, "GRU": rnn.GRU, "RNN": rnn.RNN}[kind]
    kw = {"device": device, "dtype": dtype}
    models = _models(cls, getattr(torch.nn, kind), (inp, hidden), kw)
    x = torch.randn(steps, batch, inp, device=device, dtype=dtype, requires_grad=True)
    fns = {}
    for impl, model in models.items():

        def fwd(model=model):
            model(x)

        def fwd_bwd(model=model):
            x.grad = None
            for p in model.parameters():
                p.grad = None
            model(x)[0].sum().backward()

        def infer(model=model):
            with torch.no_grad():
                model(x)

        for mode, fn in zip(MODES, (fwd, fwd_bwd, infer)):
            fns[(impl, mode)] = _with_dnn(impl != "torch-nodnn", fn)
    return fns


def generation_fns(device, dtype, steps: int = 100) -> dict[str, object]:
    """``steps`` single-token steps through a 2-layer 512 LSTM, carrying the state, no grad."""
    kw = {"num_layers": 2, "device": device, "dtype": dtype}
    models = _models(rnn.LSTM, torch.nn.LSTM, (512, 512), kw)
    x = torch.randn(1, 1, 512, device=device, dtype=dtype)
    fns = {}
    for impl, model in models.items():

        def run(model=model):
            state = None
            with torch.no_grad():
                for _ in range(steps):
                    _, state = model(x, state)

        fns[impl] = _with_dnn(impl != "torch-nodnn", run)
    return fns


def bfloat16_table(kinds, device, warmup: int, repeats: int, stat) -> dict:
    """fwd+bwd milliseconds at the small shape in float32 and bfloat16, rnnkit and torch.nn, side
    by side (rnnkit's bfloat16 runs its PyTorch time loop: the C loops are float32/float64)."""
    steps, batch, features, hidden = SHAPES["small"]
    print(f"bfloat16 vs float32, fwd+bwd ms at {steps},{batch},{features},{hidden}:")
    table = {}
    for kind in kinds:
        fns = {}
        for dtype in (torch.float32, torch.bfloat16):
            torch.manual_seed(0)
            theirs = getattr(torch.nn, kind)(features, hidden).to(device, dtype)
            ours = getattr(rnn, kind)(features, hidden).to(device, dtype)
            x = torch.randn(steps, batch, features, device=device, dtype=dtype, requires_grad=True)
            for impl, model in (("rnnkit", ours), ("torch", theirs)):
                fns[(impl, str(dtype)[6:])] = lambda m=model, x=x: m(x)[0].float().sum().backward()
        ms = _bench(fns, device, warmup, repeats, stat)
        table[kind] = {f"{impl} {dtype}": t for (impl, dtype), t in ms.items()}
        cells = "  ".join(f"{name} {t:7.2f}" for name, t in table[kind].items())
        bf16 = ms[("rnnkit", "bfloat16")] / ms[("rnnkit", "float32")]
        print(f"  {kind:5} {cells}  (rnnkit bf16/fp32 {bf16:.2f}x)")
    return table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (CPU)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="2 repeats, 1 warm-up")
    parser.add_argument("--kinds", default="LSTM,GRU,RNN")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="of: " + ",".join(SHAPES))
    parser.add_argument("--json", type=Path, help="also write the table here")
    parser.add_argument(
        "--stat", choices=("median", "min"), default="median", help="statistic over the repeats"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.warmup = 2, 1
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device, dtype = torch.device(args.device), torch.float32
    peak = matmul_gflops(device, dtype, args.warmup, max(args.repeats, 5))
    machine = f"{platform.processor() or platform.machine()}, {args.device}"
    if device.type == "cuda":
        machine += f" ({torch.cuda.get_device_name(device)})"
    stat = {"median": statistics.median, "min": min}[args.stat]
    load = os.getloadavg()[0]
    print(f"machine: {machine} ({torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} cores, "
          f"load average {load:.1f} at start); torch {torch.__version__}; "
          f"threads {torch.get_num_threads()}; {args.stat} of {args.repeats} repeats")  # fmt: skip
    print(f"float32 matmul (6400x512 @ 512x2048): {peak:.1f} GFLOP/s")
    rows = []
    head = f"{'layer':5} {'T,B,I,H':>14} {'mode':8}"
    for impl in IMPLS:
        head += f" {impl + ' ms':>17} {'GF/s':>6} {'%mm':>4}"
    head += f" {'vs torch':>8} {'vs nodnn':>8}"  # rnnkit's speed relative to torch.nn's
    print(head)
    for kind in args.kinds.split(","):
        for shape_name in args.shapes.split(","):
            shape = SHAPES[shape_name]
            steps, batch, inp, hidden = shape
            fns = layer_fns(kind, shape, device, dtype)
            ms = _bench(fns, device, args.warmup, args.repeats, stat)
            fwd_flop = FLOPS_PER_TOKEN[kind] * hidden * (inp + hidden) * steps * batch
            for mode in MODES:
                flop = fwd_flop * (3 if mode == "fwd+bwd" else 1)
                line = f"{kind:5} {','.join(map(str, shape)):>14} {mode:8}"
                for impl in IMPLS:
                    t = ms[(impl, mode)]
                    gflops = flop / t / 1e6
                    rows.append(
                        {"layer": kind, "shape": shape_name, "T": steps, "B": batch, "I": inp,
                         "H": hidden, "mode": mode, "impl": impl, "ms": t, "gflops": gflops,
                         "share_of_matmul": gflops / peak}
                    )  # fmt: skip
                    line += f" {t:17.2f} {gflops:6.1f} {100 * gflops / peak:4.0f}"
                for impl in ("torch", "torch-nodnn"):
                    line += f" {ms[(impl, mode)] / ms[('rnnkit', mode)]:7.2f}x"
                print(line, flush=True)
    steps = 100
    gen = _bench(generation_fns(device, dtype, steps), device, args.warmup, args.repeats, stat)
    gen_us = {impl: 1e3 * t / steps for impl, t in gen.items()}
    print("generation step (B=1, one step through a 2-layer 512 LSTM, no grad), us per step:")
    print("  " + "  ".join(f"{impl} {us:.1f}" for impl, us in gen_us.items()), end="")
    print(f"  (rnnkit / torch = {gen_us['rnnkit'] / gen_us['torch']:.2f})")
    print("'vs torch' = torch.nn time / rnnkit time (> 1: rnnkit faster).")
    print(f"load average {os.getloadavg()[0]:.1f} at the end (other processes share the machine)")
    print(f"this CPU: {torch.backends.cpu.get_cpu_capability()}")
    bf16 = bfloat16_table(args.kinds.split(","), device, args.warmup, args.repeats, stat)
    if args.json:
        result = {
            "machine": machine, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "repeats": args.repeats, "stat": args.stat, "matmul_gflops": peak, "rows": rows,
            "generation_step_us": gen_us, "bfloat16_fwd_bwd_ms": bf16,
        }  # fmt: skip
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
