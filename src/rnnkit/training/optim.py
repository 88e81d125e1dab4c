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
from torch import nn

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
        params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
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

    @contextmanager
    def averaged(self) -> Iterator[None]:
        """Inside the block the parameters hold the averaged weights (once averaging)."""
        swapped = []
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if "average" in self.state[p]:
                        swapped.append((p, p.detach().clone()))
                        p.copy_(self.state[p]["average"])
        try:
            yield
        finally:
            with torch.no_grad():
                for p, raw in swapped:
                    p.copy_(raw)


def averaged_weights(optimizer: torch.optim.Optimizer) -> Any:
    """A context in which the model holds the weights to evaluate: an averaging optimizer's
    average (:class:`NTASGD`), else the weights as they are."""
    averaged = getattr(optimizer, "averaged", None)
    return averaged() if averaged is not None else nullcontext()


def observe_validation(optimizer: torch.optim.Optimizer, loss: float) -> bool:
    """Tell an optimizer that reacts to validation (:class:`NTASGD`) the new loss; True if it
    changed its behaviour."""
    observe = getattr(optimizer, "observe", None)
    return bool(observe(loss)) if observe is not None else False
