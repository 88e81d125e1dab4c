"""rnnkit.nn on a CUDA GPU in one go (a few minutes): parity with torch.nn and speed against cuDNN.

What the CPU-only test suite cannot run (``tests/nn/test_nn_cuda_paths.py`` covers the decisions
on fake CUDA tensors): for RNN, LSTM (with projection) and GRU, bidirectional and two layers,
padded and packed input,

* float32 parity of rnnkit's kernels (their PyTorch time loop on CUDA) with torch.nn (cuDNN):
  outputs, final states and every gradient; TF32 is switched off for the comparison;
* ``torch.autocast("cuda")`` in float16 and bfloat16: the output dtypes torch.nn gives (layers
  and cells; for layers under bfloat16 the autocast dtype, where torch.nn's cuDNN layers give
  float16), values within the precision, finite float32 parameter gradients;
* the gradient penalty (double backward) against torch.nn without cuDNN (cuDNN has none);
* ``torch.compile(fullgraph=True)`` forward and backward, and ``torch.export``;
* ``torch.func.vmap(grad)``; CTC against ``F.ctc_loss``; MinGRU and MinLSTM against the CPU;
* the layer options (layer_norm, zoneout, recurrent_dropout, weight_drop) against their reference
  cells, ``impl='auto'`` against ``impl='rnnkit'``, in evaluation, and their speed against cuDNN;
* a probe of the word-level language models of ``benchmarks/lm.py --awd`` (``--lm-steps``);
* speed: forward+backward and inference, rnnkit's kernels, ``impl='auto'`` (cuDNN) and torch.nn.

    python benchmarks/cuda_check.py            # prints "no CUDA device" and exits 0 without one
    python benchmarks/cuda_check.py --device cpu --quick   # the same checks on the CPU (a dry run)

Exit status 1 if any check fails; every check prints one line.
"""

from __future__ import annotations

import argparse
import math
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
            # On CUDA the dtype asked for: torch.nn's cuDNN layers give float16 under a bfloat16
            # autocast (torch 2.11, cuDNN 9.19, on an H200; bfloat16 with cuDNN off)
            same = a[0].dtype == (dtype if device.type == "cuda" else b[0].dtype)
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


def vmap_grad(device: torch.device) -> None:
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


def ctc(device: torch.device) -> None:
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


def min_rnns(device: torch.device) -> None:
    for name in ("MinGRU", "MinLSTM"):
        torch.manual_seed(0)
        model = getattr(rnn, name)(8, 6, num_layers=2)
        x = torch.randn(9, 3, 8)
        want = model(x)[0]
        got = model.to(device)(x.to(device))[0]
        check(f"{name} vs its CPU result", rel_error(got, want) < 1e-4)


_ALL = {"layer_norm": True, "zoneout": 0.3, "recurrent_dropout": 0.25, "weight_drop": 0.4}
OPTION_SETS = {**{name: {name: value} for name, value in _ALL.items()}, "all": _ALL}


def _optioned(kind: str, device: torch.device, impl: str = "auto", dtype=torch.float64, **opts):
    torch.manual_seed(0)
    layer = getattr(rnn, kind)(8, 6, 2, bidirectional=True, impl=impl, **opts)
    with torch.no_grad():  # normalization parameters away from the identity
        for name, p in layer.named_parameters():
            if name.startswith("ln_"):
                p.add_(0.3 * torch.randn_like(p))
    return layer.to(device=device, dtype=dtype)


def _seeded(model, given, x, seed: int, reference: bool = False) -> list[torch.Tensor]:
    """``run`` with the generators seeded first (the same masks), by the kernels or (reference)
    the plain-autograd cells."""
    from rnnkit.nn import options

    original = options.run
    if reference:
        options.run = lambda *a, **k: original(*a, **k, reference=True)
    try:
        torch.manual_seed(seed)
        return run(model, given(x), x)
    finally:
        options.run = original


def options_checks(device: torch.device) -> None:
    """The layer options (issue 19) on the device: kernels against the reference cells with the
    same masks (float64), impl='auto' against impl='rnnkit' (weight drop alone runs in torch's
    fused operator on the dropped weights there), evaluation against the plain layer, against the
    CPU, and zoneout=1 keeping the initial state."""
    for kind in KINDS:
        for name, opts in OPTION_SETS.items():
            x, given = inputs(device, packed=True)
            x = x.detach().double().requires_grad_(True)
            layer = _optioned(kind, device, **opts)
            auto = _seeded(layer, given, x, 11)
            ref = _seeded(layer, given, x, 11, reference=True)
            ours = _seeded(_optioned(kind, device, impl="rnnkit", **opts), given, x, 11)
            err = max(rel_error(a, b) for a, b in zip(auto, ref))
            err2 = max(rel_error(a, b) for a, b in zip(auto, ours))
            check(f"options {kind} {name}: auto vs reference cells, vs impl='rnnkit' (float64)",
                  err < 1e-10 and err2 < 1e-10, f"max rel error {err:.1e}, {err2:.1e}")  # fmt: skip
        # float32, where auto runs cuDNN on the dropped weights, against rnnkit's kernels
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        x, given = inputs(device, packed=False)
        fused = _optioned(kind, device, dtype=torch.float32, weight_drop=0.4)
        ours = _optioned(kind, device, impl="rnnkit", dtype=torch.float32, weight_drop=0.4)
        stored = [p.detach().clone() for p in fused.parameters()]
        a, b = _seeded(fused, given, x, 5), _seeded(ours, given, x, 5)
        err = max(rel_error(u, v) for u, v in zip(a, b))
        kept = all(torch.equal(p, q) for p, q in zip(fused.parameters(), stored))
        changes = rel_error(_seeded(fused, given, x, 6)[0], a[0]) > 1e-3
        check(f"weight_drop {kind} float32: fused (auto) vs rnnkit, weights kept, new masks",
              err < 1e-4 and kept and changes, f"max rel error {err:.1e}")  # fmt: skip
        # evaluation: the dropouts change nothing; layer_norm + zoneout as on the CPU
        plain = _optioned(kind, device)
        dropped = _optioned(kind, device, recurrent_dropout=0.3, weight_drop=0.5)
        x, given = inputs(device, packed=True)
        x = x.detach().double()
        with torch.no_grad():
            same = torch.equal(plain.eval()(given(x))[0].data, dropped.eval()(given(x))[0].data)
        check(f"eval {kind}: recurrent_dropout and weight_drop equal the plain layer", same)
        cell = _optioned(kind, device, layer_norm=True, zoneout=0.3).eval()
        with torch.no_grad():
            got = cell(given(x))[0].data
            want = cell.cpu()(given(x.cpu()))[0].data
        check(f"eval {kind} layer_norm+zoneout vs the CPU (float64)", rel_error(got, want) < 1e-12,
              f"rel error {rel_error(got, want):.1e}")  # fmt: skip
        keep = _optioned(kind, device, zoneout=1.0).train()
        h0 = torch.randn(4, 4, 6, device=device, dtype=torch.float64)
        state = (h0, torch.randn_like(h0)) if kind == "LSTM" else h0
        out, _ = keep(torch.randn(7, 4, 8, device=device, dtype=torch.float64), state)
        fwd = out[..., :6]  # the forward direction of the last layer keeps its h0 at every step
        check(f"zoneout=1 {kind} keeps the initial state", torch.equal(fwd, h0[2].expand_as(fwd)))


def options_speed(device: torch.device, repeats: int, quick: bool) -> None:
    shapes = [(50, 16, 128, 128)] + ([] if quick else [(100, 64, 512, 512)])
    variants = [("plain", "auto", {}), ("plain", "rnnkit", {}),
                *((n, "auto", o) for n, o in OPTION_SETS.items() if n != "all"),
                ("weight_drop", "rnnkit", OPTION_SETS["weight_drop"])]  # fmt: skip
    print("\noptions, fwd+bwd ms (median) in training; auto: cuDNN where it can run the layer "
          "(plain, weight drop), rnnkit's kernels (PyTorch time loop) otherwise")  # fmt: skip
    print("{:5} {:>14} {:18} {:7} {:>9} {:>8}".format("layer", "T,B,I,H", "option", "impl", "ms",
                                                      "/ cuDNN"))  # fmt: skip
    for kind in ("LSTM", "GRU"):
        for steps, batch, inp, hidden in shapes:
            x = torch.randn(steps, batch, inp, device=device, requires_grad=True)
            base = None
            for name, impl, opts in variants:
                torch.manual_seed(0)
                model = getattr(rnn, kind)(inp, hidden, impl=impl, **opts).to(device).train()
                ms = _ms(_timed_call(model, x, "fwd+bwd"), device, repeats)
                base = base or ms
                print(
                    "{:5} {:>14} {:18} {:7} {:9.2f} {:7.2f}x".format(
                        kind, f"{steps},{batch},{inp},{hidden}", name, impl, ms, ms / base
                    ),
                    flush=True,
                )


def lm_probe(device: torch.device, steps: int) -> None:
    """The whole-split word-level comparison's two models (benchmarks/lm.py --awd --max-vocab
    10000: adamw_awd at half its dropout rates, and the plain LSTM of its size) trained for
    ``steps`` steps each on this device, on a synthetic 10,000-word text: steps per second and
    what 15 passes over the whole Shakespeare training split (1,220,254 words) would take."""
    import dataclasses
    import tempfile

    import lm as bench  # benchmarks/lm.py
    from rnnkit.lm import train
    from rnnkit.lm.recipe import get_recipe
    from rnnkit.training.config import Runtime

    gen = torch.Generator().manual_seed(0)
    ranks = torch.arange(1, 10_001, dtype=torch.float64)
    ids = torch.multinomial(1 / ranks, 300_000, replacement=True, generator=gen)
    words = " ".join(f"w{i}" for i in ids.tolist())
    half = dict(dropout=0.15, input_dropout=0.15, hidden_dropout=0.1, embedding_dropout=0.025,
                weight_drop=0.15)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "words.txt"
        path.write_text(words + "\n")
        awd = dataclasses.replace(get_recipe("awd-lstm"), data=str(path), max_vocab=10_000,
                                  max_minutes=None, max_steps=steps, eval_every=0)  # fmt: skip
        models = {"awd half": dataclasses.replace(bench.adamw_awd(awd), **half),
                  "plain": dataclasses.replace(bench.plain_like(awd), max_steps=steps,
                                               max_minutes=None)}  # fmt: skip
        pass_steps = 1_220_254 // (awd.batch_size * awd.bptt)
        print(f"\nword-level LM on {device.type}: {steps} steps each, a pass of the whole "
              f"split = {pass_steps} steps")  # fmt: skip
        for name, recipe in models.items():
            start = time.perf_counter()
            result = train(Path(tmp) / name.replace(" ", "-"), recipe=recipe,
                           runtime=Runtime(device=device.type))  # fmt: skip
            wall = time.perf_counter() - start
            per_s = result.tokens_per_s / (recipe.batch_size * recipe.bptt)
            check(f"LM {name} trains on {device.type}", math.isfinite(result.train_loss),
                  f"{per_s:.1f} steps/s; 15 passes: {15 * pass_steps / per_s / 60:.1f} min "
                  f"({wall:.0f} s for {steps} steps with setup and validation)")  # fmt: skip


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
    parser.add_argument("--lm-steps", type=int, default=300,
                        help="steps of each word-level LM of the probe (0: no probe)")  # fmt: skip
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing checked (run this on a machine with a GPU)")
        return 0
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(f"machine: {name}; torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN "
          f"{torch.backends.cudnn.version()}; load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    start = time.perf_counter()
    for part in (parity_fp32, autocast, gradient_penalty, graphs, vmap_grad, ctc, min_rnns,
                 options_checks):  # fmt: skip
        try:
            part(device)
        except Exception as e:  # one broken part must not hide the others' results
            check(part.__name__, False, f"{type(e).__name__}: {str(e)[:200]}")
    speed(device, 3 if args.quick else args.repeats, args.quick)
    options_speed(device, 3 if args.quick else args.repeats, args.quick)
    if args.lm_steps:
        try:
            lm_probe(device, args.lm_steps)
        except Exception as e:
            check("lm_probe", False, f"{type(e).__name__}: {str(e)[:200]}")
    failed = [name for name, ok, _ in RESULTS if not ok]
    print(
        f"\n{len(RESULTS) - len(failed)} of {len(RESULTS)} checks passed in "
        f"{time.perf_counter() - start:.0f} s"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
