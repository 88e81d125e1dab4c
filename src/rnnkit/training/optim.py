"""Optimizers and learning-rate schedules for :mod:`rnnkit.training`.

The schedule is a plain function of the step and of the share of the budget used, so a resumed
run needs no scheduler object: the trainer sets every step's rate from its own position.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from rnnkit.training.config import TrainConfig


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer ``config`` names, over the model's trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
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
    progress = min(max(progress, 0.0), 1.0)
    if config.schedule == "constant":
        factor = 1.0
    elif config.schedule == "linear":
        factor = 1.0 - progress
    else:
        factor = 0.5 * (1.0 + math.cos(math.pi * progress))
    return config.lr * (config.min_lr_ratio + (1.0 - config.min_lr_ratio) * factor)
