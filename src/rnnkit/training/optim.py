"""Optimizers and learning-rate schedules for :mod:`rnnkit.training`.

The schedule is a plain function of the step and of the share of the budget used, so a resumed
run needs no scheduler object: the trainer sets every step's rate from its own position.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.training.config import TrainConfig


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer ``config`` names, over the model's trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "nt-asgd":
        return NTASGD(
            params, lr=config.lr, weight_decay=config.weight_decay, nonmono=config.nonmono
        )
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    return torch.optim.AdamW(
        params,
        lr=config.lr,
        betas=config.betas,
        weight_decay=config.weight_decay,
        fused=fusable(params),
    )


def fusable(params: list[Tensor]) -> bool:
    """Whether AdamW can take its fused kernel for ``params``: all floating point, on one CPU or
    CUDA device. The fused kernel updates every tensor in one pass per parameter instead of a
    dozen element-wise operations, to the same values up to rounding: the speech
    model's update (0.74 M weights) took 0.9 ms instead of 3.3 on one thread, 2.8 instead of
    11.6 on two (benchmarks/results/ddp_shared_memory.txt)."""
    devices = {p.device for p in params}
    return (
        len(devices) == 1
        and next(iter(devices)).type in ("cpu", "cuda")
        and all(p.is_floating_point() for p in params)
    )


def lr_at(config: TrainConfig, step: int, progress: float) -> float:
    """Learning rate for ``step`` when ``progress`` (0..1) of the budget is used."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    factor = decay_factor(config.schedule, progress)
    if config.decay_steps is not None:
        # The same decay over decay_steps steps down to the floor, so a long budget does not
        # stretch the high-rate phase (speech, 20 CPU-minutes: lr 4e-3 capped at 5,000 steps
        # took the best validation loss from 0.0146 to 0.0049; docs/speech.md). Below the floor
        # the budget's own decay takes over at the end.
        capped = decay_factor(config.schedule, step / config.decay_steps)
        factor = min(factor, max(config.decay_floor, capped))
    return config.lr * (config.min_lr_ratio + (1.0 - config.min_lr_ratio) * factor)


def decay_factor(schedule: str, progress: float) -> float:
    """The share (1..0) of the peak rate that ``schedule`` gives at ``progress`` (0..1)."""
    progress = min(max(progress, 0.0), 1.0)
    if schedule == "constant":
        return 1.0
    if schedule == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


class NTASGD(torch.optim.Optimizer):
    """Non-monotonically triggered averaged SGD (Merity et al. 2017, "Regularizing and Optimizing
    LSTM Language Models", algorithm 1).

    Plain SGD (``p -= lr * (grad + weight_decay * p)``) until :meth:`observe` is told a
    validation loss worse than the best of those observed before the last ``nonmono`` (with
    ``nonmono=0``, from the start: the fine-tuning stage); from
    then on each step also updates the running average of the iterates, starting with the
    weights at the switch: ``average = mean(w_switch, w_switch+1, ..., w_now)``. Inside
    :meth:`averaged` the parameters hold that average (what is evaluated and saved as best).
    Everything (validation history, switch, average, count) is in :meth:`state_dict`, so a
    resumed run continues exactly.
    """

    def __init__(
        self, params: Iterable[Any], *, lr: float, weight_decay: float = 0.0, nonmono: int = 5
    ) -> None:
        defaults = {"lr": lr, "weight_decay": weight_decay}
        super().__init__(params, defaults)
        # The trigger's state lives in the first group, so state_dict() carries it.
        self.param_groups[0].update(nonmono=nonmono, history=[], averaging=False, averaged=0)
        if nonmono == 0:  # average from the first step (AWD-LSTM's fine-tuning stage)
            self._start_averaging()

    @property
    def averaging(self) -> bool:
        """Whether the switch to averaging has happened."""
        return bool(self.param_groups[0]["averaging"])

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        head = self.param_groups[0]
        if head["averaging"]:
            head["averaged"] += 1
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = (
                    p.grad.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else p.grad
                )
                p.add_(grad, alpha=-group["lr"])
                if head["averaging"]:
                    average = self.state[p]["average"]
                    average.add_(p - average, alpha=1.0 / head["averaged"])

    @torch.no_grad()
    def observe(self, loss: float) -> bool:
        """Record a validation loss; switch to averaging if it stalled (returns True then)."""
        head = self.param_groups[0]
        history, n = head["history"], head["nonmono"]
        switch = not head["averaging"] and len(history) > n and loss > min(history[:-n])
        history.append(float(loss))
        if switch:
            self._start_averaging()
        return switch

    def _start_averaging(self) -> None:
        self.param_groups[0].update(averaging=True, averaged=1)
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["average"] = p.detach().clone()

    def averaged(self) -> Any:
        """A context in which the parameters hold the averaged weights (once averaging)."""
        params = (p for group in self.param_groups for p in group["params"])
        return holding([(p, self.state[p]["average"]) for p in params
                        if "average" in self.state[p]])  # fmt: skip


@contextmanager
def holding(pairs: list[tuple[Tensor, Tensor]]) -> Iterator[None]:
    """Inside the block each parameter of ``pairs`` holds its value; its own one afterwards
    (how both averages are evaluated and saved while training goes on with the raw weights)."""
    raw = [(p, p.detach().clone()) for p, _ in pairs]
    with torch.no_grad():
        for p, value in pairs:
            p.copy_(value)
    try:
        yield
    finally:
        with torch.no_grad():
            for p, value in raw:
                p.copy_(value)


class ExponentialAverage:
    """An exponential moving average of a model's trainable floating-point parameters, for
    evaluating and keeping the averaged weights while training continues on the raw ones
    (Polyak averaging's exponential form).

    After the ``n``-th optimizer step :meth:`update` sets ``avg <- d avg + (1 - d) w`` with
    ``d = min(decay, (1 + n) / (10 + n))`` (the warm-up of TensorFlow's
    ``ExponentialMovingAverage`` with ``num_updates``; ``torch.optim.swa_utils``'s EMA uses the
    constant ``decay``): the first updates follow the weights closely, so the average does not
    stay near the initial ones for ``1 / (1 - decay)`` steps; ``avg`` starts as the initial
    weights. Buffers (a batch norm's running statistics) are not averaged: they stay as
    trained. :meth:`averaged` swaps the average in; its
    :meth:`state_dict` goes into the resume checkpoint, so a resumed run continues exactly.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        trained = model.named_parameters()
        self.params = {name: p for name, p in trained if p.requires_grad and p.is_floating_point()}
        self.average = {name: p.detach().clone() for name, p in self.params.items()}

    def rate(self) -> float:
        """The share ``1 - d`` of the weights the next :meth:`update` mixes in."""
        n = self.updates + 1
        return 1.0 - min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self) -> None:
        """Mix the weights after an optimizer step into the average."""
        rate = self.rate()
        self.updates += 1
        for name, p in self.params.items():
            self.average[name].lerp_(p.detach(), rate)

    def averaged(self) -> Any:
        """A context in which the parameters hold the average; the raw weights afterwards."""
        return holding([(p, self.average[name]) for name, p in self.params.items()])

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "average": dict(self.average)}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output (ValueError when it does not fit the model)."""
        average = state["average"]
        if set(average) != set(self.params):
            raise ValueError("the averaged weights are not this model's parameters")
        for name, p in self.params.items():
            if average[name].shape != p.shape:
                raise ValueError(f"averaged {name} has shape {tuple(average[name].shape)}")
            self.average[name].copy_(average[name])
        self.updates = int(state["updates"])


def averaged_weights(
    optimizer: torch.optim.Optimizer, ema: ExponentialAverage | None = None
) -> Any:
    """A context in which the model holds the weights to evaluate: an averaging optimizer's
    average (:class:`NTASGD`), the exponential average ``ema``, else the weights as they are.
    (TrainConfig refuses the two averages together.)"""
    if ema is not None:
        return ema.averaged()
    averaged = getattr(optimizer, "averaged", None)
    return averaged() if averaged is not None else nullcontext()


def observe_validation(optimizer: torch.optim.Optimizer, loss: float) -> bool:
    """Tell an optimizer that reacts to validation (:class:`NTASGD`) the new loss; True if it
    changed its behaviour."""
    observe = getattr(optimizer, "observe", None)
    return bool(observe(loss)) if observe is not None else False
