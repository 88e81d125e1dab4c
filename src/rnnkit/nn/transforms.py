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
"""

from __future__ import annotations

from typing import Any

import torch
import torch.autograd.forward_ad as fwAD
from torch import Tensor


def transformed(tensors: list[Tensor]) -> bool:
    """Whether a ``torch.func`` transform is active or forward-mode AD tracks one of ``tensors``."""
    if torch._C._functorch.peek_interpreter_stack() is not None:
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
