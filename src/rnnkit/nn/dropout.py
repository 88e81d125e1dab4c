"""Dropout that respects the structure of sequences: one mask over time, whole word rows.

AWD-LSTM (Merity et al. 2017) regularizes a language model with both: variational ("locked")
dropout between the layers and on the output, the same mask at every time step of a sequence
(Gal & Ghahramani 2016), and embedding dropout, which drops a word's whole embedding vector so
that every occurrence of that word in the batch is dropped together.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.nn import dispatch, regularized_native
from rnnkit.nn.regularized_native import DroppedWeight


def check_probability(p: object, name: str = "p", *, one: bool = False) -> float:
    """``p`` as a float in ``[0, 1)`` (``[0, 1]`` if ``one``), else a ``ValueError`` naming it.

    A dropout probability of 1 would drop everything and divide by zero when rescaling.
    """
    number = isinstance(p, int | float) and not isinstance(p, bool)
    if not number or not (0 <= p <= 1 if one else 0 <= p < 1):
        interval = "[0, 1]" if one else "[0, 1)"
        raise ValueError(f"{name} should be a probability in {interval}, got {name}={p!r}")
    return float(p)


def drop_connect(weight: Tensor, p: float, *, grad_in_place: bool = False,
                 seed: int | None = None) -> Tensor:  # fmt: skip
    """``weight`` with each entry zeroed with probability ``p`` and the rest scaled by
    ``1/(1-p)`` (DropConnect, Wan et al. 2013): a new tensor, the parameter itself untouched.

    The mask is drawn anew at every call, so its cost is paid per forward pass: on the CPU it is
    :func:`random_mask`'s C pass, which also writes the dropped weight (about 1 ms for a
    2048 x 512 matrix where ``torch.rand`` alone took 4 ms, a third of a whole 32-step LSTM
    layer's forward and backward at batch 1). With ``grad_in_place``, backward masks the gradient
    arriving for the dropped weight in place rather than into a new tensor (a 4 MB allocation
    less per call): only for callers whose consumer of the result computes that gradient afresh
    and holds it nowhere else (the layers: their kernels' dL/dW_hh). ``seed`` (from
    :func:`mask_seed`) gives the C mask's seed, drawn earlier; by default one is drawn now.
    """
    if _c_masks(weight):
        return _DropConnect.apply(weight, p, grad_in_place, _seed() if seed is None else seed)
    return weight * random_mask(weight, weight.shape, 1 - p, 1 / (1 - p))


def mask_seed(weight: Tensor) -> int | None:
    """The seed of a C weight-drop mask for ``weight``, drawn from torch's generator now (None
    where the masks come from ``torch.rand``: other devices, transforms, tracing)."""
    return _seed() if _c_masks(weight) else None


def drop_weight(weight: Tensor, p: float, seed: int) -> DroppedWeight:
    """The mask of :func:`drop_connect` with this ``seed`` (the same entries), applied to
    ``weight`` outside autograd, with the mask's bytes: for the plain kernels, which multiply
    with :attr:`DroppedWeight.weight` and return the stored weight's gradient through
    :meth:`DroppedWeight.grad` (``rnnkit.nn.kernels``; the C masks only, see :func:`mask_seed`).
    """
    _, dropped, kept = regularized_native.random_mask(
        tuple(weight.shape), 1 - p, 1 / (1 - p), seed, dtype=weight.dtype, weight=weight,
        factor=False, kept=True,
    )  # fmt: skip
    return DroppedWeight(dropped, kept, 1 / (1 - p))


def random_mask(like: Tensor, shape: tuple[int, ...] | torch.Size, keep: float,
                scale: float = 1.0) -> Tensor:  # fmt: skip
    """A tensor of ``shape`` (``like``'s dtype and device) whose entries are ``scale`` with
    probability ``keep`` and 0 otherwise, independently: the masks of weight drop, zoneout and
    recurrent dropout.

    On the CPU one C pass draws it (:func:`rnnkit.nn.regularized_native.random_mask`, a hashed
    counter keyed by a seed taken from torch's generator, so ``torch.manual_seed`` reproduces
    it): 10-20 times faster than ``torch.rand`` or ``torch.bernoulli``, which matters as zoneout
    draws one value per unit and step and weight drop one per recurrent weight and call. There
    ``keep`` is rounded to a multiple of 2^-16 (16 random bits per entry). Elsewhere (other
    devices, no compiler, ``torch.func`` transforms, tracing) the same distribution comes from
    ``torch.rand``.
    """
    if _c_masks(like):
        return regularized_native.random_mask(tuple(shape), keep, scale, _seed(),
                                              dtype=like.dtype)[0]  # fmt: skip
    uniform = torch.rand(shape, dtype=like.dtype, device=like.device)
    return (uniform < keep).to(like.dtype).mul_(scale)


def _seed() -> int:
    """A 64-bit seed for the C masks from torch's global generator."""
    return int(torch.randint(-(2**63), 2**63 - 1, (), dtype=torch.int64))


def _c_masks(like: Tensor) -> bool:
    tensors = [like]
    if dispatch.transformed(tensors) or dispatch.tracing(tensors):
        return False
    return regularized_native.available(like)


class _DropConnect(torch.autograd.Function):
    """``weight -> dropped``, the mask drawn in C; backward draws the same mask again from the
    same seed and multiplies the gradient by it in one pass (nothing kept but the seed)."""

    @staticmethod
    def forward(ctx: Any, weight: Tensor, p: float, grad_in_place: bool, seed: int) -> Tensor:
        ctx.mask = (tuple(weight.shape), 1 - p, 1 / (1 - p), seed)
        ctx.grad_in_place = grad_in_place
        _, dropped = regularized_native.random_mask(*ctx.mask, dtype=weight.dtype, weight=weight,
                                                    factor=False)  # fmt: skip
        return dropped

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None]:
        # In place only where the caller said the gradient is its own (see drop_connect), and
        # never while a graph of the gradient is being recorded.
        in_place = ctx.grad_in_place and not torch.is_grad_enabled() and grad.is_contiguous()
        _, d_weight = regularized_native.random_mask(*ctx.mask, dtype=grad.dtype, weight=grad,
                                                     factor=False, in_place=in_place)  # fmt: skip
        return d_weight, None, None, None


class LockedDropout(nn.Module):
    """Dropout with one mask per sequence, shared by all its time steps (variational dropout).

    Args:
        p: probability of zeroing a feature (for the whole sequence); kept ones are scaled by
            ``1/(1-p)``, so evaluation (where the module is the identity) needs no rescaling.
        batch_first: inputs are ``(B, T, F)`` instead of ``(T, B, F)``.

    Inputs: ``(T, B, F)`` (or ``(B, T, F)``). Outputs: the same shape.
    """

    def __init__(self, p: float = 0.5, *, batch_first: bool = False) -> None:
        super().__init__()
        self.p = check_probability(p)
        self.batch_first = batch_first

    def extra_repr(self) -> str:
        return f"p={self.p}" + (", batch_first=True" if self.batch_first else "")

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or not self.p:
            return x
        if x.dim() != 3:
            raise ValueError(f"LockedDropout: expected a 3-D input (T, B, F), got {x.dim()}-D")
        shape = (x.shape[0], 1, x.shape[2]) if self.batch_first else (1, *x.shape[1:])
        mask = torch.bernoulli(x.new_full(shape, 1 - self.p)).div_(1 - self.p)
        return x * mask  # the mask broadcasts over time


class EmbeddingDropout(nn.Embedding):
    """An ``nn.Embedding`` that, in training, drops whole rows (words) of its weight per call.

    Every occurrence of a dropped word in the batch gets the zero vector; the kept rows are
    scaled by ``1/(1-dropout)``. The stored weight is untouched (tied output layers see it whole),
    and in evaluation this is exactly ``nn.Embedding``. Same arguments as ``nn.Embedding``, plus:

    Args:
        dropout: probability of dropping a row, in ``[0, 1)``.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, *args: object,
                 dropout: float = 0.1, **kwargs: object) -> None:  # fmt: skip
        super().__init__(num_embeddings, embedding_dim, *args, **kwargs)
        self.dropout = check_probability(dropout, "dropout")

    def extra_repr(self) -> str:
        return super().extra_repr() + f", dropout={self.dropout}"

    def forward(self, input: Tensor) -> Tensor:
        weight = self.weight
        if self.training and self.dropout:
            keep = torch.bernoulli(weight.new_full((weight.shape[0], 1), 1 - self.dropout))
            weight = weight * keep.div_(1 - self.dropout)  # (V, E), zero rows for dropped words
        return F.embedding(
            input, weight, self.padding_idx, self.max_norm, self.norm_type,
            self.scale_grad_by_freq, self.sparse,
        )  # fmt: skip
