"""``torch.func`` transforms and forward-mode AD on rnnkit's autograd Functions.

The kernels' Functions (:mod:`rnnkit.nn.kernels`, :mod:`rnnkit.nn.regularized`,
:class:`rnnkit.nn.scan.LinearScan`, :class:`rnnkit.nn.ctc.CTCFunction`) compute with hand-written
backward passes and time loops in C that read raw pointers. Neither can run on the wrapped tensors
of ``vmap``, ``grad``, ``jacrev``, ``jvp`` or forward-mode AD: a vmap rule alone would not do
(``jacrev`` and ``vmap(grad)`` also vmap the *backward*, and the C loops cannot take a batched
tensor), and a forward-mode rule would be a second hand-written derivative.

So each Function names a **reference**: the same computation in plain differentiable torch ops
(:func:`rnnkit.nn.steps.run`, :func:`rnnkit.nn.regularized_cells.run_reference`,
:func:`rnnkit.nn.scan.sequential_scan`, :func:`rnnkit.nn.ctc.ctc_nll`), which every transform
understands at every order. ``Function.apply`` runs the reference while a transform is active or
forward-mode AD tracks one of the arguments, and the hand-written kernels otherwise: the decision
the layers make (:mod:`rnnkit.nn.dispatch`), made by the Functions themselves for callers that use
them directly. The tests compare each transform with the Function applied sample by sample.

The reference also serves double backward: when autograd records a graph of the gradient
(``create_graph=True``, gradient penalties), a Function's backward returns
:meth:`ReferencedFunction.reference_grads`, the reference recomputed from the saved arguments and
differentiated with ``create_graph=True``, instead of its hand-written (once-differentiable)
gradient. The Functions keep their tensor arguments for that (:func:`save_arguments`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.autograd.forward_ad as fwAD
from torch import Tensor


def transformed(tensors: list[Tensor]) -> bool:
    """Whether a ``torch.func`` transform is active or forward-mode AD tracks one of ``tensors``."""
    # Not ``is not None``: dynamo wraps the result in an object that is never None, which made
    # every compiled layer run its reference instead of its custom operator.
    if not isinstance(torch._C._functorch.peek_interpreter_stack(), type(None)):
        return True
    return fwAD._current_level >= 0 and any(
        fwAD.unpack_dual(t).tangent is not None for t in tensors
    )


class ReferencedFunction(torch.autograd.Function):
    """An autograd Function whose :meth:`apply` runs :meth:`reference` under transforms.

    Subclasses define ``forward``/``backward`` (the kernels) and ``reference``, a staticmethod
    with ``forward``'s arguments (less ``ctx``) and outputs, in differentiable torch ops.
    """

    @staticmethod
    def reference(*args: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        given = [a for a in (*args, *kwargs.values()) if isinstance(a, Tensor)]
        if transformed(given):
            return cls.reference(*args, **kwargs)
        return super().apply(*args, **kwargs)

    @classmethod
    def reference_grads(
        cls, args: list[Any], grads: tuple[Tensor | None, ...], needed: tuple[bool, ...]
    ) -> tuple[Tensor | None, ...]:
        """The gradients of ``args`` as a graph autograd can differentiate again.

        :meth:`reference` recomputed from ``args`` (``forward``'s arguments, as
        :func:`saved_arguments` returns them) and differentiated with ``create_graph=True``,
        given the outputs' gradients ``grads`` (None where absent); ``needed`` is
        ``ctx.needs_input_grad``. One entry per argument, None for those that want none.
        """
        with torch.enable_grad():
            outs = cls.reference(*args)
        outs = outs if isinstance(outs, tuple | list) else (outs,)
        return differentiable_grads(outs, args, grads, needed)


def differentiable_grads(
    outs: tuple[Tensor, ...] | list[Tensor], inputs: tuple[Any, ...] | list[Any],
    grads: tuple[Tensor | None, ...], needed: tuple[bool, ...],
) -> tuple[Tensor | None, ...]:  # fmt: skip
    """The gradients of ``inputs`` from ``outs`` (computed from them with grad enabled) given the
    outputs' gradients ``grads`` (None where absent), as a graph autograd can differentiate again.
    One entry per input: None where ``needed`` says no or the input is not a tensor."""
    pairs = [(out, g) for out, g in zip(outs, grads) if g is not None]
    wanted = [i for i, (a, need) in enumerate(zip(inputs, needed))
              if need and isinstance(a, Tensor)]  # fmt: skip
    found = torch.autograd.grad(
        [out for out, _ in pairs], [inputs[i] for i in wanted], [g for _, g in pairs],
        create_graph=True, allow_unused=True,
    )  # fmt: skip
    result: list[Tensor | None] = [None] * len(inputs)
    for i, g in zip(wanted, found):
        result[i] = g
    return tuple(result)


def save_arguments(ctx: Any, args: tuple[Any, ...], *extra: Tensor) -> None:
    """``save_for_backward`` the tensor arguments of ``forward`` and the ``extra`` tensors; the
    other arguments (None, sizes, flags) stay on ``ctx``."""
    ctx.plain_args = [None if isinstance(a, Tensor) else a for a in args]
    ctx.tensor_args = [isinstance(a, Tensor) for a in args]
    ctx.save_for_backward(*(a for a in args if isinstance(a, Tensor)), *extra)


def saved_arguments(ctx: Any) -> tuple[list[Any], list[Tensor]]:
    """``forward``'s arguments and the extra tensors that :func:`save_arguments` kept."""
    saved = iter(ctx.saved_tensors)
    args = [next(saved) if tensor else a for a, tensor in zip(ctx.plain_args, ctx.tensor_args)]
    return args, list(saved)
