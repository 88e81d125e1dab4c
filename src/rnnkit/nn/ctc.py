"""Connectionist temporal classification loss with a hand-written backward pass.

:func:`ctc_loss` has the signature and the numbers of ``torch.nn.functional.ctc_loss`` (values,
reductions, ``zero_infinity``); its gradient is the exact derivative with respect to
``log_probs`` (equation (10) of ``docs/ctc.md``). (torch's own backward returns
``exp(log_probs)`` minus the posteriors, which is the gradient with respect to the logits of a
``log_softmax``; after ``log_softmax`` the two agree, and that is what the tests compare.)

:class:`CTCFunction` computes the loss and its gradient together in the forward pass, as
warp-ctc does: the backward recursion needs the forward variables anyway, and the backward pass
is then one multiplication by the incoming gradient. The recursions run

- in C (``ctc.c``, one utterance per thread, compiled on first use by :mod:`rnnkit.cbuild`),
- or in the PyTorch loop below, vectorised over the batch and the extended target (the
  fallback without a compiler, and the oracle of the C code).

``impl`` chooses: ``"rnnkit"`` (C when it is available, else the PyTorch loop),
``"rnnkit-pytorch"``, ``"torch"`` (``F.ctc_loss``, an explicit opt-in), ``"auto"`` (= rnnkit).

Under ``torch.autocast`` the loss follows torch's policy for ``F.ctc_loss``
(:func:`rnnkit.nn.precision.policy`): on the CPU, bfloat16/float16 ``log_probs`` are cast to
float32 (their gradient comes back in their own dtype) and the loss is float32.

Example::

    log_probs = torch.randn(50, 4, 20).log_softmax(2).requires_grad_()   # (T, B, C)
    targets = torch.randint(1, 20, (4, 10))                             # (B, S), padded
    loss = ctc_loss(log_probs, targets, torch.full((4,), 50), torch.full((4,), 10))
    loss.backward()
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit import cbuild
from rnnkit.nn import precision
from rnnkit.nn.transforms import ReferencedFunction

IMPLS = ("rnnkit", "rnnkit-pytorch", "torch", "auto")
REDUCTIONS = ("none", "mean", "sum")
SOURCE = Path(__file__).with_name("ctc.c")
_REALS = {torch.float32: "float", torch.float64: "double"}


@functools.cache
def _library(dtype: torch.dtype) -> ctypes.CDLL | None:
    real = _REALS[dtype]
    return cbuild.load(SOURCE, f"rnnkit_ctc_{real}", (f"-DREAL={real}",), ("-fopenmp",))


def c_available(x: Tensor) -> bool:
    """Whether the C recursions can run on tensors like ``x`` (CPU, float32/float64)."""
    return x.device.type == "cpu" and x.dtype in _REALS and _library(x.dtype) is not None


def ctc_loss(
    log_probs: Tensor,
    targets: Tensor,
    input_lengths: Tensor | list[int],
    target_lengths: Tensor | list[int],
    blank: int = 0,
    reduction: str = "mean",
    zero_infinity: bool = False,
    *,
    impl: str = "auto",
) -> Tensor:
    """CTC loss (Graves et al. 2006); arguments and result as ``torch.nn.functional.ctc_loss``.

    Args:
        log_probs: (T, B, C) or unbatched (T, C) log-probabilities (a ``log_softmax`` output).
        targets: (B, S) padded labels, or all targets concatenated (sum(target_lengths),).
        input_lengths: (B,) frames of each utterance, 1..T.
        target_lengths: (B,) labels of each target, 0..S.
        blank: the blank class.
        reduction: ``"none"`` (B,), ``"sum"``, or ``"mean"`` (each loss divided by its target
            length, then averaged over the batch).
        zero_infinity: impossible alignments give loss 0 and gradient 0 instead of inf.
        impl: ``"rnnkit"``, ``"rnnkit-pytorch"``, ``"torch"`` or ``"auto"`` (see the module).

    Raises:
        ValueError: a shape, length, label, reduction or impl that does not fit.
    """
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    unbatched = log_probs.dim() == 2
    if unbatched:
        log_probs = log_probs.unsqueeze(1)
        targets = targets.unsqueeze(0) if targets.dim() == 1 else targets
    here = {"dtype": torch.long, "device": log_probs.device}  # lengths may come as lists
    input_lengths = torch.as_tensor(input_lengths, **here).reshape(-1)
    target_lengths = torch.as_tensor(target_lengths, **here).reshape(-1)
    targets = targets.to(log_probs.device)
    padded = check_inputs(log_probs, targets, input_lengths, target_lengths, blank)
    if impl == "torch":
        return F.ctc_loss(log_probs, padded, input_lengths, target_lengths, blank, reduction,
                          zero_infinity)  # fmt: skip
    device = log_probs.device.type
    dtype = precision.policy("ctc", device, log_probs.dtype, precision.autocast_lower(device))
    with precision.no_autocast(device):  # cast once, as autocast does for F.ctc_loss
        log_probs = log_probs.to(dtype)
        return _reduce(log_probs, padded, input_lengths, target_lengths, blank, reduction,
                       zero_infinity, impl, unbatched)  # fmt: skip


def _reduce(log_probs: Tensor, padded: Tensor, input_lengths: Tensor, target_lengths: Tensor,
            blank: int, reduction: str, zero_infinity: bool, impl: str,
            unbatched: bool) -> Tensor:  # fmt: skip
    """:func:`ctc_loss` by rnnkit's recursions, on checked arguments."""
    use_c = impl != "rnnkit-pytorch" and c_available(log_probs)
    nll = CTCFunction.apply(
        log_probs, padded, input_lengths, target_lengths, blank, zero_infinity, use_c
    )  # (B,)
    if reduction == "sum":
        return nll.sum()
    if reduction == "mean":
        return (nll / target_lengths.clamp(min=1).to(nll.dtype)).mean()
    return nll.squeeze(0) if unbatched else nll


def check_inputs(
    log_probs: Tensor, targets: Tensor, input_lengths: Tensor, target_lengths: Tensor, blank: int
) -> Tensor:
    """Validate the arguments of :func:`ctc_loss`; return the targets as a padded (B, S) tensor."""
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must be (T, B, C), got shape {tuple(log_probs.shape)}")
    if not log_probs.is_floating_point():
        raise ValueError(f"log_probs must be floating point, got {log_probs.dtype}")
    T, B, C = log_probs.shape
    if not 0 <= blank < C:
        raise ValueError(f"blank must be in [0, {C}), got {blank}")
    if input_lengths.numel() != B or target_lengths.numel() != B:
        raise ValueError(
            f"need {B} input and target lengths, got {input_lengths.numel()} and "
            f"{target_lengths.numel()}"
        )
    if B and (int(input_lengths.min()) < 1 or int(input_lengths.max()) > T):
        raise ValueError(f"input_lengths must be in [1, {T}], got {input_lengths.tolist()}")
    if B and int(target_lengths.min()) < 0:
        raise ValueError(f"target_lengths must be >= 0, got {target_lengths.tolist()}")
    targets = targets.to(torch.long)
    if targets.dim() == 1:  # concatenated: cut and pad
        total = int(target_lengths.sum())
        if targets.numel() != total:
            raise ValueError(
                f"concatenated targets hold {targets.numel()} labels; the lengths sum to {total}"
            )
        width = int(target_lengths.max()) if B else 0
        padded = targets.new_full((B, width), blank)
        for b, piece in enumerate(targets.split(target_lengths.tolist())):
            padded[b, : piece.numel()] = piece
        targets = padded
    elif targets.dim() != 2 or targets.shape[0] != B:
        raise ValueError(f"targets must be (B={B}, S) or 1-D, got shape {tuple(targets.shape)}")
    elif B and int(target_lengths.max()) > targets.shape[1]:
        raise ValueError(
            f"a target length ({int(target_lengths.max())}) exceeds the targets' width "
            f"{targets.shape[1]}"
        )
    # Only the labels inside each length count; the padding may hold anything.
    positions = torch.arange(targets.shape[1], device=targets.device)
    used = positions < target_lengths.unsqueeze(1)  # (B, S)
    labels = targets[used]
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= C):
        raise ValueError(f"target labels must be in [0, {C}), got {sorted(set(labels.tolist()))}")
    if bool((labels == blank).any()):
        raise ValueError(f"targets must not contain the blank class ({blank})")
    return torch.where(used, targets, torch.full_like(targets, blank)).contiguous()


class CTCFunction(ReferencedFunction):
    """``nll (B,) = CTCFunction.apply(log_probs (T, B, C), targets (B, S), input_lengths (B,),
    target_lengths (B,), blank, zero_infinity, use_c)``: per-utterance negative
    log-likelihoods; the gradient is computed in the forward pass and scaled in the backward.
    Under ``torch.func`` transforms and for double backward :func:`ctc_nll` runs instead."""

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        log_probs: Tensor,
        targets: Tensor,
        input_lengths: Tensor,
        target_lengths: Tensor,
        blank: int,
        zero_infinity: bool,
        use_c: bool,
    ) -> Tensor:
        want_grad = ctx.needs_input_grad[0]
        run = forward_backward_c if use_c else forward_backward_torch
        nll, grad = run(log_probs.detach(), targets, input_lengths, target_lengths, blank,
                        want_grad)  # fmt: skip
        if zero_infinity:
            impossible = torch.isinf(nll)
            nll = nll.masked_fill(impossible, 0.0)
            if grad is not None:
                grad = grad.masked_fill(impossible.view(1, -1, 1), 0.0)
        saved = grad if grad is not None else log_probs.new_empty(0)
        ctx.save_for_backward(saved, log_probs, targets, input_lengths, target_lengths)
        ctx.options = (blank, zero_infinity)
        return nll

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad_nll: Tensor) -> tuple:
        grad, log_probs, *labels = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: a gradient to differentiate again
            nll = ctc_nll(log_probs, *labels, *ctx.options)
            (grad,) = torch.autograd.grad(nll, log_probs, grad_nll, create_graph=True)
            return grad, None, None, None, None, None, None
        return grad * grad_nll.view(1, -1, 1), None, None, None, None, None, None

    @staticmethod
    def reference(log_probs, targets, input_lengths, target_lengths, blank, zero_infinity,  # noqa: ANN001, ANN205
                  use_c=False):  # noqa: ANN001  # fmt: skip
        return ctc_nll(log_probs, targets, input_lengths, target_lengths, blank, zero_infinity)


def ctc_nll(log_probs: Tensor, targets: Tensor, input_lengths: Tensor, target_lengths: Tensor,
            blank: int, zero_infinity: bool = False) -> Tensor:  # fmt: skip
    """:class:`CTCFunction`'s values by the forward (alpha) recursion alone, in differentiable
    torch ops without in-place writes: what ``torch.func`` transforms and double backward
    differentiate. Impossible alignments give ``inf`` (0 with ``zero_infinity``), gradient 0."""
    T, B, _ = log_probs.shape
    blanks = targets.new_full((B, 1), blank)
    pairs = torch.stack([blanks.expand_as(targets), targets], 2).reshape(B, -1)
    ext = torch.cat([pairs, blanks], 1)  # (B, S): blank, l1, blank, l2, ..., blank
    S = ext.shape[1]
    repeat = torch.cat([ext.new_ones(B, min(S, 2)), ext[:, 2:] == ext[:, :-2]], 1)
    skip = (ext != blank) & ~repeat.bool()  # (B, S): the step s - 2 -> s is allowed
    emit = log_probs.gather(2, ext.unsqueeze(0).expand(T, B, S))  # (T, B, S)
    neg_inf = torch.full_like(emit[0], float("-inf"))

    def shift(x: Tensor, by: int) -> Tensor:  # x[:, s - by], -inf where s < by
        return F.pad(x, (by, 0), value=float("-inf"))[:, :S]

    alpha = torch.where(torch.arange(S, device=emit.device) < 2, emit[0], neg_inf)
    alphas = [alpha]
    for t in range(1, T):
        two_back = torch.where(skip, shift(alpha, 2), neg_inf)
        alpha = _logsumexp(torch.stack([alpha, shift(alpha, 1), two_back])) + emit[t]
        alphas.append(alpha)
    last = (input_lengths - 1).view(1, B, 1).expand(1, B, S)
    ends = torch.stack(alphas).gather(0, last).squeeze(0)  # (B, S)
    last_s = (2 * target_lengths).view(B, 1)
    end_two = torch.where(last_s > 0, ends.gather(1, (last_s - 1).clamp(min=0)), neg_inf[:, :1])
    log_p = _logsumexp(torch.stack([ends.gather(1, last_s), end_two])).squeeze(1)  # (B,)
    impossible = torch.full_like(log_p, 0.0 if zero_infinity else float("inf"))
    return torch.where(torch.isinf(log_p), impossible, -log_p)


def _logsumexp(x: Tensor) -> Tensor:
    """``logsumexp`` over dimension 0 whose gradient is 0 (torch's: NaN) where every term is
    ``-inf``."""
    top = x.amax(0)
    finite = torch.isfinite(top)
    shift = torch.where(finite, top, torch.zeros_like(top)).detach()
    total = (x - shift).exp().sum(0).clamp_min(torch.finfo(x.dtype).tiny)
    return torch.where(finite, total.log() + shift, top)


def forward_backward_c(
    log_probs: Tensor,
    targets: Tensor,
    input_lengths: Tensor,
    target_lengths: Tensor,
    blank: int,
    want_grad: bool,
) -> tuple[Tensor, Tensor | None]:
    """``(nll (B,), grad (T, B, C) or None)`` from the C recursions of ``ctc.c``."""
    check_buffers(log_probs, targets, input_lengths, target_lengths)
    T, B, C = log_probs.shape
    log_probs = log_probs.contiguous()
    targets, input_lengths, target_lengths = (
        x.contiguous() for x in (targets, input_lengths, target_lengths)
    )
    nll = log_probs.new_empty(B)
    grad = torch.zeros_like(log_probs) if want_grad else None
    status = _library(log_probs.dtype).ctc_forward_backward(
        ctypes.c_void_p(log_probs.data_ptr()), ctypes.c_int64(T), ctypes.c_int64(B),
        ctypes.c_int64(C), ctypes.c_void_p(targets.data_ptr()), ctypes.c_int64(targets.shape[1]),
        ctypes.c_void_p(input_lengths.data_ptr()), ctypes.c_void_p(target_lengths.data_ptr()),
        ctypes.c_int64(blank), ctypes.c_void_p(nll.data_ptr()),
        ctypes.c_void_p(0 if grad is None else grad.data_ptr()),
        ctypes.c_int(torch.get_num_threads()),
    )  # fmt: skip
    if status == -2:
        raise ValueError("ctc.c refused the lengths or labels (out of range); nothing was computed")
    if status != 0:
        raise MemoryError("ctc.c: out of memory for the forward-backward variables")
    return nll, grad


def check_buffers(
    log_probs: Tensor, targets: Tensor, input_lengths: Tensor, target_lengths: Tensor
) -> None:
    """The types and shapes the C entry reads (:class:`CTCFunction` may be called directly)."""
    if log_probs.dim() != 3 or log_probs.dtype not in _REALS or log_probs.device.type != "cpu":
        raise ValueError(
            f"log_probs must be a (T, B, C) float32/float64 CPU tensor, got {log_probs.dtype} "
            f"{tuple(log_probs.shape)} on {log_probs.device}"
        )
    B = log_probs.shape[1]
    for name, x, dims in (("targets", targets, 2), ("input_lengths", input_lengths, 1),
                          ("target_lengths", target_lengths, 1)):  # fmt: skip
        if x.dtype != torch.int64 or x.dim() != dims or x.shape[0] != B or x.device.type != "cpu":
            raise ValueError(
                f"{name} must be an int64 CPU tensor with {B} rows, got {x.dtype} {tuple(x.shape)}"
            )


def forward_backward_torch(
    log_probs: Tensor,
    targets: Tensor,
    input_lengths: Tensor,
    target_lengths: Tensor,
    blank: int,
    want_grad: bool,
) -> tuple[Tensor, Tensor | None]:
    """The same recursions as ``ctc.c`` in PyTorch, every step over the whole batch at once."""
    T, B, C = log_probs.shape
    S = 2 * targets.shape[1] + 1
    neg_inf = torch.tensor(float("-inf"), dtype=log_probs.dtype, device=log_probs.device)
    ext = targets.new_full((B, S), blank)
    ext[:, 1::2] = targets  # (B, S): blank, l1, blank, l2, ..., blank
    skip = torch.zeros(B, S, dtype=torch.bool, device=log_probs.device)
    skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    emit = log_probs.gather(2, ext.unsqueeze(0).expand(T, B, S))  # (T, B, S): log y_t(ext[s])

    def shift(x: Tensor, by: int) -> Tensor:  # x[:, s - by], -inf where s < by
        return F.pad(x, (by, 0), value=float("-inf"))[:, :S]

    def unshift(x: Tensor, by: int) -> Tensor:  # x[:, s + by], -inf where s + by >= S
        return F.pad(x, (0, by), value=float("-inf"))[:, by:]

    alpha = log_probs.new_full((T, B, S), float("-inf"))
    alpha[0, :, :2] = emit[0, :, :2]
    for t in range(1, T):
        prev = alpha[t - 1]
        two_back = torch.where(skip, shift(prev, 2), neg_inf)
        alpha[t] = torch.logsumexp(torch.stack([prev, shift(prev, 1), two_back]), 0) + emit[t]
    rows = torch.arange(B, device=log_probs.device)
    last_t, last_s = input_lengths - 1, 2 * target_lengths  # (B,)
    ends = alpha[last_t, rows]  # (B, S)
    end_two = torch.where(last_s > 0, ends[rows, (last_s - 1).clamp(min=0)], neg_inf)
    log_p = torch.logaddexp(ends[rows, last_s], end_two)  # (B,)
    if not want_grad:
        return -log_p, None
    # beta starts at each utterance's own last frame and last two extended positions.
    s_index = torch.arange(S, device=log_probs.device).unsqueeze(0)  # (1, S)
    start = (s_index == last_s.unsqueeze(1)) | (s_index == (last_s - 1).unsqueeze(1))  # (B, S)
    skip_ahead = torch.zeros(B, S, dtype=torch.bool, device=log_probs.device)
    skip_ahead[:, :-2] = skip[:, 2:]

    beta = log_probs.new_full((T, B, S), float("-inf"))
    following = log_probs.new_full((B, S), float("-inf"))
    for t in range(T - 1, -1, -1):
        two_ahead = torch.where(skip_ahead, unshift(following, 2), neg_inf)
        step = torch.logsumexp(torch.stack([following, unshift(following, 1), two_ahead]), 0)
        at_end = (last_t == t).unsqueeze(1)  # (B, 1)
        step = torch.where(at_end, torch.where(start, 0.0, neg_inf), step)
        beta[t] = step + emit[t]
        following = beta[t]
    occupancy = alpha + beta - emit  # (T, B, S): log of all paths through (t, s)
    occupancy = torch.where(torch.isinf(beta), neg_inf, occupancy)  # t past the end, s past S_b
    posterior = torch.exp(occupancy - log_p.view(1, B, 1))
    posterior = torch.nan_to_num(posterior, nan=0.0)  # impossible utterances (log p = -inf)
    grad = torch.zeros_like(log_probs).scatter_add_(2, ext.unsqueeze(0).expand(T, B, S), -posterior)
    grad = grad.masked_fill(torch.isinf(log_p).view(1, B, 1), 0.0)
    return -log_p, grad
