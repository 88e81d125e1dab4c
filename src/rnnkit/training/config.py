"""How to train: :class:`TrainConfig`, the settings of :class:`rnnkit.training.Trainer`.

Stored in every run's ``config.json`` under ``"train"``; torch-free, so the command line can show
defaults without importing torch. What a resumed run may change is
:data:`rnnkit.runs.RESUMABLE`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from rnnkit.errors import ConfigError

# What a task's training loss is per when its task (and recipe module) name none: the progress
# line and the playground's curves (an application's recipe.py may define LOSS_UNIT).
DEFAULT_LOSS_UNIT = "nats/token"

OPTIMIZERS = ("adamw", "sgd", "nt-asgd")


def check_weight_decay(value: float) -> None:
    """Weight decay is >= 0 and finite (an application's recipe may ask before training)."""
    if not 0.0 <= value < float("inf"):  # refuses NaN too
        raise ConfigError(f"weight_decay must be >= 0 and finite, got {value}")


@dataclass
class TrainConfig:
    """How to train; stored in the run's ``config.json`` under ``"train"``."""

    optimizer: str = "adamw"  # "adamw", "sgd" or "nt-asgd" (SGD, averaged once validation stalls)
    lr: float = 2e-3  # peak learning rate
    weight_decay: float = 0.0  # AdamW's decoupled weight decay (SGD: L2 penalty)
    momentum: float = 0.0  # SGD momentum
    nonmono: int = 5  # nt-asgd: average once valid loss stalls over N evaluations (0: at once)
    ema: float = 0.0  # evaluate and keep an exponential moving average of the weights with
    # this decay per step (optim.ExponentialAverage; 0: off, the weights as trained)
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW moment decay rates
    schedule: str = "cosine"  # decay over the budget: "constant", "linear" or "cosine"
    warmup_steps: int = 0  # linear warm-up from 0 to lr over these steps
    min_lr_ratio: float = 0.0  # final learning rate as a fraction of lr
    decay_steps: int | None = None  # the decay reaches decay_floor by this step at the latest
    # (however long the budget), holds it, and follows the budget's own decay below it at the
    # end; a budget of fewer steps decays as before. None: the budget's decay only
    decay_floor: float = 0.1  # the rate held after decay_steps, as a fraction of lr
    clip_norm: float = 1.0  # clip the global gradient norm to this (0: no clipping)
    epochs: int | None = None  # stop after this many passes over the training data
    max_steps: int | None = None  # stop after this many optimizer steps
    max_minutes: float | None = None  # stop after this much wall-clock time (evaluation included)
    patience: int | None = None  # also stop after N validations without a new best (None: never)
    reserve_refit: bool = False  # with max_minutes: also stop once the time left would not
    # train again up to the best checkpoint (at this run's pace), so that a refit of that many
    # steps fits the same budget (the forecasting refit sets it)
    schedule_steps: int | None = None  # the schedule's length in steps, when it is not the
    # budget (a refit that replays part of an earlier run's schedule); None: the budget
    keep: str = "best"  # which validated weights are kept (model.safetensors): "best" (the lowest
    # validation loss, or the task's selection score) or "last" (the latest, finite ones)
    eval_every: int = 500  # validate and checkpoint every N steps (0: only at the end)
    eval_each_epoch: bool = False  # also validate and checkpoint at the end of every pass (the
    # same phase of the data each time: no swing from where in the text the model last trained)
    log_every: int = 50  # write a training-loss record every N steps
    seed: int = 0  # seeds torch's and Python's random generators

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)  # type: ignore[assignment]  # JSON gives a list
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.nonmono < 0:
            raise ConfigError(f"nonmono must be >= 0, got {self.nonmono}")
        if not 0.0 <= self.ema < 1.0:  # refuses NaN too
            raise ConfigError(f"ema must be in [0, 1) (a decay per step, 0: off), got {self.ema}")
        if self.ema and self.optimizer == "nt-asgd":
            raise ConfigError(
                "ema and nt-asgd both average the weights; choose one of them (--ema 0 turns "
                "the moving average off)"
            )
        if self.keep not in ("best", "last"):
            raise ConfigError(f"keep must be 'best' or 'last', got {self.keep!r}")
        if self.schedule not in ("constant", "linear", "cosine"):
            raise ConfigError(f"schedule must be constant, linear or cosine, got {self.schedule!r}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        check_weight_decay(self.weight_decay)
        for name in ("epochs", "max_steps", "max_minutes"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{name} must be > 0, got {value}")
        if not 0.0 <= self.decay_floor <= 1.0:
            raise ConfigError(f"decay_floor must be in [0, 1], got {self.decay_floor}")
        for name in ("patience", "schedule_steps", "decay_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        if self.epochs is None and self.max_steps is None and self.max_minutes is None:
            raise ConfigError("give a budget: epochs, max_steps or max_minutes")
        if self.eval_every < 0 or self.log_every < 1 or not self.clip_norm >= 0:  # NaN too
            raise ConfigError(
                f"need eval_every >= 0, log_every >= 1, clip_norm >= 0; got {self.eval_every}, "
                f"{self.log_every}, {self.clip_norm}"
            )

    def progress(self, step: int, elapsed_s: float, steps_per_epoch: int) -> float:
        """Fraction of the schedule done at ``step``, ``elapsed_s`` into the run:
        ``step / schedule_steps`` when that is set, else the largest fraction used over the
        budgets that are set (the trainer's learning-rate schedules follow it)."""
        if self.schedule_steps is not None:
            return step / self.schedule_steps
        parts = []
        if self.max_steps is not None:
            parts.append(step / self.max_steps)
        if self.epochs is not None:
            parts.append(step / (self.epochs * steps_per_epoch))
        if self.max_minutes is not None:
            parts.append(elapsed_s / (60.0 * self.max_minutes))
        return max(parts)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """A config from ``asdict`` output, ignoring unknown keys."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def config_dict(config: TrainConfig) -> dict[str, Any]:
    """``config`` as a JSON-able dict."""
    data = asdict(config)
    data["betas"] = list(config.betas)
    return data


DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("fp32", "bf16", "fp16")
GRADIENT_SYNCS = ("auto", "ddp")


@dataclass
class Runtime:
    """Where and how a run computes; not stored in the run (a resumed run may choose again)."""

    device: str = "auto"  # "auto" (cuda, then mps, then cpu), "cpu", "cuda" or "mps"
    precision: str = "fp32"  # "fp32", "bf16" or "fp16": autocast (fp16 on CUDA: a grad scaler)
    nproc: int = 1  # processes on this machine (--nproc starts them with torch's elastic launcher)
    port: int = 0  # rendezvous port of --nproc (0: any free port)
    timeout_s: float = 600.0  # how long a collective waits for a slow or dead rank
    # How several ranks average gradients: "auto" (through shared memory when every rank is a
    # CPU process on this machine, DistributedDataParallel otherwise) or "ddp" (always DDP)
    gradient_sync: str = "auto"

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ConfigError(f"device must be one of {', '.join(DEVICES)}; got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}"
            )
        if self.nproc < 1:
            raise ConfigError(f"--nproc must be >= 1, got {self.nproc}")
        if not 0 <= self.port < 65536:
            raise ConfigError(f"--port must be in 0..65535, got {self.port}")
        if self.gradient_sync not in GRADIENT_SYNCS:
            raise ConfigError(
                f"gradient_sync must be one of {', '.join(GRADIENT_SYNCS)}; "
                f"got {self.gradient_sync!r}"
            )
        if not self.timeout_s > 0:
            raise ConfigError(f"the collective timeout must be > 0 s, got {self.timeout_s}")
