"""The shared training loop and what it needs: every application trains through it.

- :mod:`rnnkit.training.config`: :class:`TrainConfig` (optimizer, schedule, budgets; torch-free);
- :mod:`rnnkit.training.optim`: optimizers and the learning-rate schedule (a pure function);
- :mod:`rnnkit.training.state`: the exact-resume checkpoint (one safetensors file);
- :mod:`rnnkit.training.loop`: :class:`Trainer` and the :class:`TrainingTask` contract.

Imports point one way: config <- optim <- loop, state <- loop; nothing here imports an
application.
"""

from rnnkit.training.config import TrainConfig, config_dict
from rnnkit.training.loop import (
    NonFiniteLossError,
    Trainer,
    TrainingInterrupted,
    TrainingTask,
    TrainResult,
    detach_state,
    fit,
    seed_everything,
)

__all__ = [
    "NonFiniteLossError",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingInterrupted",
    "TrainingTask",
    "config_dict",
    "detach_state",
    "fit",
    "seed_everything",
]
