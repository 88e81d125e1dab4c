"""rnnkit.nn on a CUDA GPU in one go (a few minutes): parity with torch.nn and speed against cuDNN.

What the CPU-only test suite cannot run (``tests/nn/test_nn_cuda_paths.py`` covers the decisions
on fake CUDA tensors): for RNN, LSTM (with projection) and GRU, bidirectional and two layers,
padded and packed input,

* float32 parity of rnnkit's kernels (their PyTorch time loop on CUDA) with torch.nn (cuDNN):
  outputs, final states and every gradient; TF32 is switched off for the comparison;
* ``torch.autocast("cuda")`` in float16 and bfloat16: the output dtypes torch.nn gives (layers
  and cells), values within the precision, finite float32 parameter gradients;
* the gradient penalty (double backward) against torch.nn without cuDNN (cuDNN has none);
* ``torch.compile(fullgraph=True)`` forward and backward, and ``torch.export``;
* ``torch.func.vmap(grad)``; CTC against ``F.ctc_loss``; MinGRU against its CPU result;
* speed: forward+backward and inference, rnnkit's kernels, ``impl='auto'`` (cuDNN) and torch.nn.

    python benchmarks/cuda_check.py            # prints "no CUDA device" and exits 0 without one
    python benchmarks/cuda_check.py --device cpu --quick   # the same checks on the CPU (a dry run)

Exit status 1 if any check fails; every check prints one line.
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
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import rnnkit.nn as rnn  # noqa: E402
from layers import _timed  # noqa: E402  (benchmarks/layers.py: one timed call, synchronised)
from rnnkit.nn.ctc import ctc_loss  # noqa: E402

KINDS = ("LSTM", "GRU", "RNN")
RESULTS: list[tuple[str, bool, str]] = []


def check(name: str, ok: bool, detail: str = "") -> None:
    RESULTS.append((name, ok, detail))
    print(f"{'PASS' if ok else 'FAIL'}  {name}  {detail}", flush=True)


def rel_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest difference relative to the larger of ``b``'s largest entry and 1."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return ((a - b).abs().max() / max(b.abs().max().item(), 1.0)).item() if b.numel() else 0.0


def twins(kind: str, device: torch.device, **kw):
    torch.manual_seed(0)
    extra = {"proj_size": 3} if kind == "LSTM" else {}
    ours = getattr(rnn, kind)(8, 6, 2, bidirectional=True, impl="rnnkit", **extra, **kw)
    theirs = getattr(torch.nn, kind)(8, 6, 2, bidirectional=True, **extra, **kw)
    theirs.load_state_dict(ours.state_dict())
    return ours.to(device), theirs.to(device)


def inputs(device: torch.device, packed: bool):
    """``x`` and a function giving the layer's input from it (a new packing per call: each run
    differentiates its own graph)."""
    x = torch.randn(7, 4, 8, device=device, requires_grad=True)
    if not packed:
        return x, lambda x: x
    lengths = torch.tensor([7, 5, 5, 2])
    return x, lambda x: torch.nn.utils.rnn.pack_padded_sequence(x, lengths)


def run(model, given, x) -> list[torch.Tensor]:
    """Output, final states and the gradients of x and every parameter of a fixed loss."""
    out, finals = model(given)
    data = out.data if hasattr(out, "batch_sizes") else out
    finals = list(finals) if isinstance(finals, tuple) else [finals]
    loss = data.float().square().sum() + sum(f.float().square().sum() for f in finals)
    grads = torch.autograd.grad(loss, [x, *model.parameters()])
    return [data, *finals, *grads]


def parity_fp32(device: torch.device) -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    for kind in KINDS:
        for packed in (False, True):
            ours, theirs = twins(kind, device)
            x, given = inputs(device, packed)
            pairs = zip(run(ours, given(x), x), run(theirs, given(x), x))
            err = max(rel_error(a, b) for a, b in pairs)
            check(f"fp32 parity {kind} {'packed' if packed else 'padded'}", err < 1e-4,
                  f"max rel error {err:.1e}")  # fmt: skip


def autocast(device: torch.device) -> None:
    for dtype, tol in ((torch.float16, 1e-2), (torch.bfloat16, 6e-2)):
        for kind in KINDS:
            ours, theirs = twins(kind, device)
            x, _ = inputs(device, False)
            try:
                with torch.autocast(device.type, dtype=dtype):
                    a, b = run(ours, x, x), run(theirs, x, x)
            except RuntimeError as e:  # torch.nn's CPU LSTM under autocast (a dry run)
                check(f"autocast {dtype} {kind}", False, f"torch.nn: {str(e)[:60]}")
                continue
            same = a[0].dtype == b[0].dtype
            err = rel_error(a[0], b[0])
            finite = all(torch.isfinite(g).all() for g in a[-len(list(ours.parameters())) :])
            fp32 = all(p.dtype == torch.float32 for p in ours.parameters())
            check(
                f"autocast {dtype} {kind}",
                same and err < tol and finite and fp32,
                f"dtype {a[0].dtype} (torch.nn {b[0].dtype}), output rel error {err:.1e}",
            )
        for cell in ("RNNCell", "LSTMCell", "GRUCell"):
            torch.manual_seed(0)
            ours = getattr(rnn, cell)(8, 6).to(device)
            theirs = getattr(torch.nn, cell)(8, 6).to(device)
            theirs.load_state_dict(ours.state_dict())
            x = torch.randn(4, 8, device=device)
            with torch.autocast(device.type, dtype=dtype):
                a, b = ours(x), theirs(x)
            a, b = (a[0], b[0]) if isinstance(a, tuple) else (a, b)
            check(f"autocast {dtype} {cell}", a.dtype == b.dtype and rel_error(a, b) < tol,
                  f"dtype {a.dtype} (torch.nn {b.dtype})")  # fmt: skip


def gradient_penalty(device: torch.device) -> None:
    for kind in KINDS:
        ours, theirs = twins(kind, device)
        ours, theirs = ours.double(), theirs.double()
        x = torch.randn(5, 3, 8, device=device, dtype=torch.float64, requires_grad=True)
        grads = []
        with torch.backends.cudnn.flags(enabled=False):  # cuDNN has no double backward
            for model in (ours, theirs):
                (dx,) = torch.autograd.grad(model(x)[0].square().sum(), x, create_graph=True)
                grads.append(torch.autograd.grad(dx.square().sum(), list(model.parameters())))
        err = max(rel_error(a, b) for a, b in zip(*grads))
        check(f"gradient penalty {kind} (float64)", err < 1e-8, f"max rel error {err:.1e}")


def graphs(device: torch.device) -> None:
    for kind in ("LSTM", "GRU"):
        ours, _ = twins(kind, device)
        x, _ = inputs(device, False)
        eager = run(ours, x, x)
        torch._dynamo.reset()
        with torch._dynamo.config.patch(allow_rnn=True):
            compiled = torch.compile(ours, fullgraph=True)
            err = max(rel_error(a, b) for a, b in zip(run(compiled, x, x), eager))
        check(f"torch.compile fullgraph {kind} fwd+bwd", err < 1e-4, f"max rel error {err:.1e}")
        program = torch.export.export(ours.eval(), (x.detach(),))
        err = rel_error(program.module()(x.detach())[0], ours(x.detach())[0])
        check(f"torch.export {kind}", err < 1e-5, f"max rel error {err:.1e}")


def others(device: torch.device) -> None:
    ours, _ = twins("GRU", device)
    params = dict(ours.named_parameters())
    xs = torch.randn(3, 5, 2, 8, device=device)

    def loss(p, x):
        return torch.func.functional_call(ours, p, (x,))[0].square().sum()

    per_sample = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0))(params, xs)
    err = max(
        rel_error(per_sample[n][i], torch.autograd.grad(loss(params, xs[i]), p)[0])
        for i in range(3) for n, p in params.items()
    )  # fmt: skip
    check("vmap(grad) GRU", err < 1e-4, f"max rel error {err:.1e}")
    torch.manual_seed(0)
    logits = torch.randn(30, 4, 12, device=device, requires_grad=True)
    targets, lengths = torch.randint(1, 12, (4, 8), device=device), [30, 28, 25, 20]
    target_lengths = [8, 6, 5, 3]
    results = []
    for fn in (ctc_loss, F.ctc_loss):
        value = fn(logits.log_softmax(2), targets, lengths, target_lengths)
        results.append([value, *torch.autograd.grad(value, logits)])
    err = max(rel_error(a, b) for a, b in zip(*results))
    check("CTC vs F.ctc_loss", err < 1e-4, f"max rel error {err:.1e}")
    torch.manual_seed(0)
    model = rnn.MinGRU(8, 6, num_layers=2)
    x = torch.randn(9, 3, 8)
    want = model(x)[0]
    got = model.to(device)(x.to(device))[0]
    check("MinGRU vs its CPU result", rel_error(got, want) < 1e-4)


def _ms(fn, device: torch.device, repeats: int) -> float:
    fn()  # warm-up
    return statistics.median(_timed(fn, device) for _ in range(repeats))


def _timed_call(model, x: torch.Tensor, mode: str):
    if mode == "infer":
        return torch.no_grad()(lambda: model(x))
    return lambda: model(x)[0].sum().backward()


def speed(device: torch.device, repeats: int, quick: bool) -> None:
    shapes = [(50, 16, 128, 128)] + ([] if quick else [(100, 64, 512, 512)])
    print("\nspeed, ms (median): rnnkit's kernels, impl='auto' (cuDNN), torch.nn; "
          "ratio = rnnkit / torch.nn")  # fmt: skip
    head = ("layer", "T,B,I,H", "mode", "rnnkit", "auto", "torch", "ratio")
    print("{:5} {:>14} {:8} {:>9} {:>9} {:>9} {:>6}".format(*head))
    for kind in KINDS:
        for steps, batch, inp, hidden in shapes:
            torch.manual_seed(0)
            models = {impl: getattr(rnn, kind)(inp, hidden, impl=impl).to(device)
                      for impl in ("rnnkit", "auto")}  # fmt: skip
            models["torch"] = getattr(torch.nn, kind)(inp, hidden).to(device)
            x = torch.randn(steps, batch, inp, device=device, requires_grad=True)
            for mode in ("fwd+bwd", "infer"):
                ms = {n: _ms(_timed_call(m, x, mode), device, repeats) for n, m in models.items()}
                shape = f"{steps},{batch},{inp},{hidden}"
                row = (kind, shape, mode, ms["rnnkit"], ms["auto"], ms["torch"],
                       ms["rnnkit"] / ms["torch"])  # fmt: skip
                print("{:5} {:>14} {:8} {:9.2f} {:9.2f} {:9.2f} {:5.1f}x".format(*row), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--repeats", type=int, default=20, help="timed repeats per speed cell")
    parser.add_argument("--quick", action="store_true", help="3 timed repeats, the small shape")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing checked (run this on a machine with a GPU)")
        return 0
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(f"machine: {name}; torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN "
          f"{torch.backends.cudnn.version()}; load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    start = time.perf_counter()
    for part in (parity_fp32, autocast, gradient_penalty, graphs, others):
        try:
            part(device)
        except Exception as e:  # one broken part must not hide the others' results
            check(part.__name__, False, f"{type(e).__name__}: {str(e)[:200]}")
    speed(device, 3 if args.quick else args.repeats, args.quick)
    failed = [name for name, ok, _ in RESULTS if not ok]
    print(
        f"\n{len(RESULTS) - len(failed)} of {len(RESULTS)} checks passed in "
        f"{time.perf_counter() - start:.0f} s"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
