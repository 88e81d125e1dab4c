"""Which implementation runs one layer-direction, decided once per layer call.

In order:

* **differentiable steps** (:func:`rnnkit.nn.steps.run`) under ``torch.func`` transforms (``grad``,
  ``vmap``, ``jacrev``, ``jvp``, ...) and forward-mode AD: plain torch ops that every transform
  understands, where a hand-written backward (or C reading raw pointers) would not;
* **one opaque custom operator per kernel** (:mod:`rnnkit.nn.ops`) while ``torch.compile``,
  ``torch.export``, ``torch.jit.trace`` or another dispatch mode (fake tensors, ``make_fx``) is
  tracing: the graph sees ``rnnkit::lstm`` etc. with their shapes, and the compiled or exported
  program calls rnnkit's kernels;
* **the LSTM inference loop in C** (:func:`rnnkit.nn.native.lstm_infer`) when no gradient is
  wanted, there is no projection and the C loop takes the tensors;
* otherwise **the kernels' autograd Functions** (:mod:`rnnkit.nn.kernels`): hand-written BPTT with
  the time loop in C or PyTorch.

The eager path (the last two) costs one look at the functorch stack, the dispatch-mode stack and
the tracing flags per layer call.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from rnnkit.nn import native, ops, steps
from rnnkit.nn.kernels import run_kernel, sum_bias
from rnnkit.nn.schedule import Schedule
from rnnkit.nn.transforms import transformed

# (data, states, params, sizes, reverse) -> (y, final states)
Runner = Callable[[Tensor, list[Tensor], list, list[int], bool], tuple[Tensor, list[Tensor]]]


def tracing(tensors: list[Tensor]) -> bool:
    """Whether something is tracing the call into a graph rather than running it."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.compiler.is_exporting():
        return True
    if torch._C._len_torch_dispatch_stack() > 0:  # fake tensors, make_fx, other modes
        return True
    return any(type(t) not in (Tensor, torch.nn.Parameter) for t in tensors)


def eager(tensors: list[Tensor]) -> bool:
    """Whether the call runs the kernels' autograd Functions (no transform, nothing tracing)."""
    return not transformed(tensors) and not tracing(tensors)


def plan(mode: str, data: Tensor, weights: list[Tensor], *, use_c: bool, proj: int) -> Runner:
    """The runner for every layer-direction of one call (see the module docstring)."""
    tensors = [data, *weights]
    if transformed(tensors):
        return lambda x, states, params, sizes, reverse: steps.run(
            mode, x, states, params, sizes, reverse
        )
    if tracing(tensors):
        return lambda x, states, params, sizes, reverse: ops.run(
            mode, x, states, params, sizes, reverse, use_c
        )
    wanted = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    if mode == "LSTM" and use_c and not wanted and not proj and native.available(*tensors):
        return _infer
    return lambda x, states, params, sizes, reverse: run_kernel(
        mode, x, states, params, sizes, reverse, use_c
    )


def _infer(
    x: Tensor, states: list[Tensor], params: list, sizes: list[int], reverse: bool
) -> tuple[Tensor, list[Tensor]]:
    w_ih, w_hh, b_ih, b_hh, _ = params
    y, h_n, c_n = native.lstm_infer(Schedule(sizes, reverse), x, w_ih, sum_bias(b_ih, b_hh), w_hh,
                                    *states)  # fmt: skip
    return y, [h_n, c_n]
