"""The shared training loop: budgets, schedule, clipping, evaluation, checkpoints, exact resume.

Any task plugs in by giving :class:`Trainer` a model and a *task object* with four members
(see :class:`TrainingTask`); the trainer knows nothing else about the task::

    class MyTask:
        name = "translate"                      # written to run.json; resume checks it

        def steps_per_epoch(self) -> int:       # batches in one pass over the training data
            ...

        def train_batches(self, epoch, start):  # batches start, start+1, ... of epoch `epoch`;
            ...                                 # the order must depend only on (seed, epoch)

        def train_loss(self, model, batch, carry):
            # -> (mean loss in nats per token, number of tokens, new carry)
            # `carry` is what the previous call returned in this epoch (None at an epoch's start).
            # A language model returns its final hidden state so the next window continues it;
            # the trainer detaches it (truncated BPTT) and saves it in checkpoints. Tasks with
            # independent batches (seq2seq) ignore it and return None.
            ...

        def evaluate(self, model, split) -> float:  # mean nats per token on "valid"/"test";
            ...                                     # called under torch.no_grad(), model.eval()

    run = RunDir.create("runs/x", task="translate")   # or RunDir.open(...) to resume
    trainer = Trainer(model, task, TrainConfig(max_minutes=5), run)
    result = trainer.fit(resume=False)

The run directory then holds (besides the caller's ``config.json``/``vocab.json``):

- ``model.safetensors``: the weights with the best validation loss so far (last, if never
  validated); ``last.safetensors``: everything to resume (weights under ``model.``, optimizer
  tensors under ``optimizer.``, RNG state, the carried state) with the trainer's JSON state
  (step, epoch, position in the epoch, elapsed time, best loss, Python RNG, optimizer layout)
  in the file's metadata, one file so it is written in one atomic step;
- ``trainer.json``: a readable summary (status, step, best validation loss);
- ``metrics.jsonl``: one JSON object a line: step, epoch, split, loss (nats/token), lr,
  tokens_per_s (train records), elapsed_s; ``loss.png``: the loss curves.

Resuming restores the data position, learning rate, optimizer and random state, so an
interrupted-then-resumed run ends with the same weights as an uninterrupted one (when the
schedule is step-based; a ``max_minutes`` schedule follows the clock). SIGINT/SIGTERM write a
checkpoint and raise :class:`TrainingInterrupted`; a non-finite loss or gradient raises
:class:`NonFiniteLossError` and leaves the last good checkpoint untouched.
"""

from __future__ import annotations

import logging
import math
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from rnnkit.checkpoint import RunDir, flatten, unflatten
from rnnkit.errors import RnnkitError, RunDirError

logger = logging.getLogger(__name__)

CHECKPOINT = "last.safetensors"
BEST = "model.safetensors"
METRICS = "metrics.jsonl"
SUMMARY = "trainer.json"
PLOT = "loss.png"


class TrainingTask(Protocol):
    """What :class:`Trainer` needs from a task (see the module docstring)."""

    name: str

    def steps_per_epoch(self) -> int: ...

    def train_batches(self, epoch: int, start: int) -> Iterable[Any]: ...

    def train_loss(self, model: nn.Module, batch: Any, carry: Any) -> tuple[Tensor, int, Any]: ...

    def evaluate(self, model: nn.Module, split: str) -> float: ...


class TrainingInterrupted(RnnkitError):
    """SIGINT/SIGTERM stopped training; a checkpoint was written first."""


class NonFiniteLossError(RnnkitError):
    """The loss or gradient became NaN/inf; training stopped without saving the bad state."""


@dataclass
class TrainConfig:
    """How to train; stored in the run's ``config.json`` under ``"train"``."""

    optimizer: str = "adamw"  # "adamw" or "sgd"
    lr: float = 2e-3  # peak learning rate
    weight_decay: float = 0.0  # AdamW's decoupled weight decay (SGD: L2 penalty)
    momentum: float = 0.0  # SGD momentum
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW moment decay rates
    schedule: str = "cosine"  # decay over the budget: "constant", "linear" or "cosine"
    warmup_steps: int = 0  # linear warm-up from 0 to lr over these steps
    min_lr_ratio: float = 0.0  # final learning rate as a fraction of lr
    clip_norm: float = 1.0  # clip the global gradient norm to this (0: no clipping)
    epochs: int | None = None  # stop after this many passes over the training data
    max_steps: int | None = None  # stop after this many optimizer steps
    max_minutes: float | None = None  # stop after this much wall-clock time (evaluation included)
    eval_every: int = 500  # validate and checkpoint every N steps (0: only at the end)
    log_every: int = 50  # write a training-loss record every N steps
    seed: int = 0  # seeds torch's and Python's random generators

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)  # type: ignore[assignment]  # JSON gives a list
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")
        if self.schedule not in ("constant", "linear", "cosine"):
            raise ValueError(f"schedule must be constant, linear or cosine, got {self.schedule!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        for name in ("epochs", "max_steps", "max_minutes"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if self.epochs is None and self.max_steps is None and self.max_minutes is None:
            raise ValueError("give a budget: epochs, max_steps or max_minutes")
        if self.eval_every < 0 or self.log_every < 1 or self.clip_norm < 0:
            raise ValueError(
                f"need eval_every >= 0, log_every >= 1, clip_norm >= 0; got {self.eval_every}, "
                f"{self.log_every}, {self.clip_norm}"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """A config from ``asdict`` output, ignoring unknown keys."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` reports."""

    steps: int  # optimizer steps taken in total (all sessions of the run)
    epochs_done: float  # passes over the training data, fractional
    train_loss: float  # mean training loss over the last logging interval (nats/token)
    best_valid_loss: float | None  # best validation loss (nats/token), None if never validated
    valid_loss: float | None  # validation loss at the end
    tokens_per_s: float  # training throughput of this session
    elapsed_s: float  # wall-clock time of the whole run


def seed_everything(seed: int) -> None:
    """Seed torch's and Python's global random generators (call before building the model)."""
    torch.manual_seed(seed)
    random.seed(seed)


def detach_state(state: Any) -> Any:
    """``state`` (a tensor or a nested tuple/list of tensors, or None) cut from the graph."""
    if isinstance(state, Tensor):
        return state.detach()
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(s) for s in state)
    return state


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


class _StopFlag:
    """Turns SIGINT/SIGTERM into a request to stop after the current step (main thread only)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signal = signum
        # A second signal should stop at once: give the default behaviour back.
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Trainer:
    """Trains ``model`` on ``task`` into ``run`` (see the module docstring).

    Args:
        model: the module to train (its initial weights are the caller's, seeded).
        task: batches, loss and evaluation (:class:`TrainingTask`).
        config: optimizer, schedule, budgets, evaluation interval, seed.
        run: the run directory for checkpoints and metrics.
        quiet: no progress bar (it is also off when stdout is not a terminal).
        report: called with one-line human messages (evaluations, checkpoints); default: log.
        on_step: called as ``on_step(trainer)`` after every optimizer step (tests, tools).
    """

    def __init__(
        self,
        model: nn.Module,
        task: TrainingTask,
        config: TrainConfig,
        run: RunDir,
        *,
        quiet: bool = False,
        report: Callable[[str], None] | None = None,
        on_step: Callable[[Trainer], None] | None = None,
    ) -> None:
        self.model = model
        self.task = task
        self.config = config
        self.run = run
        self.quiet = quiet
        self.report = report or logger.info
        self.on_step = on_step
        self.optimizer = make_optimizer(model, config)
        self.steps_per_epoch = task.steps_per_epoch()
        if self.steps_per_epoch < 1:
            raise ValueError(f"task {task.name!r} has no training batches")
        # Position in the run; all of it goes into checkpoints.
        self.step = 0
        self.epoch = 0
        self.position = 0  # batches of the current epoch already trained on
        self.elapsed = 0.0  # seconds of the run before this session
        self.best_valid: float | None = None
        self.best_step: int | None = None
        self.last_valid: float | None = None
        self.checkpoint_step: int | None = None
        self.carry: Any = None
        self.window_loss = 0.0  # summed training loss since the last train record
        self.window_tokens = 0  # tokens behind window_loss
        self._stop_requested = False
        self._session_start = time.monotonic()

    # ----------------------------------------------------------------- budget and schedule
    def elapsed_s(self) -> float:
        """Wall-clock seconds of the whole run (earlier sessions included)."""
        return self.elapsed + time.monotonic() - self._session_start

    def progress(self) -> float:
        """Fraction (0..1) of the budget used: the largest over the budgets that are set."""
        c = self.config
        parts = []
        if c.max_steps is not None:
            parts.append(self.step / c.max_steps)
        if c.epochs is not None:
            parts.append(self.step / (c.epochs * self.steps_per_epoch))
        if c.max_minutes is not None:
            parts.append(self.elapsed_s() / (60.0 * c.max_minutes))
        return max(parts)

    def _budget_spent(self) -> bool:
        c = self.config
        return (
            (c.max_steps is not None and self.step >= c.max_steps)
            or (c.epochs is not None and self.epoch >= c.epochs)
            or (c.max_minutes is not None and self.elapsed_s() >= 60.0 * c.max_minutes)
        )

    def request_stop(self) -> None:
        """Stop after the current step, writing a checkpoint (as SIGINT does)."""
        self._stop_requested = True

    # ----------------------------------------------------------------- the loop
    def fit(self, *, resume: bool = False) -> TrainResult:
        """Train until a budget is spent; returns the final figures.

        Args:
            resume: continue from the run's ``last.safetensors`` instead of starting fresh.

        Raises:
            TrainingInterrupted: SIGINT/SIGTERM (a checkpoint was written first).
            NonFiniteLossError: the loss or gradient norm became NaN/inf.
        """
        if resume:
            self._load_checkpoint()
        else:
            seed_everything(self.config.seed)
        self._session_start = time.monotonic()
        session_tokens, session_train_s = 0, 0.0
        last_train_loss, tokens_per_s = float("nan"), 0.0
        bar = self._progress_bar()
        with _StopFlag() as stop:
            try:
                while not self._budget_spent():
                    for batch in self.task.train_batches(self.epoch, self.position):
                        if self._budget_spent():
                            break
                        t0 = time.monotonic()
                        loss_value, n_tokens = self._train_step(batch)
                        session_train_s += time.monotonic() - t0
                        session_tokens += n_tokens
                        self.window_loss += loss_value * n_tokens
                        self.window_tokens += n_tokens
                        tokens_per_s = session_tokens / max(session_train_s, 1e-9)
                        if bar is not None:
                            bar.update(1)
                            bar.set_postfix(loss=f"{loss_value:.3f}", tok_s=f"{tokens_per_s:.0f}")
                        if self.step % self.config.log_every == 0:
                            last_train_loss = self._log_train(tokens_per_s)
                        if self.config.eval_every and self.step % self.config.eval_every == 0:
                            self._validate_and_checkpoint()
                        if self.on_step is not None:
                            self.on_step(self)
                        if stop.signal is not None or self._stop_requested:
                            self._save_checkpoint("interrupted")
                            raise TrainingInterrupted(
                                f"interrupted at step {self.step}; checkpoint saved in "
                                f"{self.run.path}; continue with --resume {self.run.path}"
                            )
                    else:  # the epoch ran to its end
                        self.epoch += 1
                        self.position = 0
                        self.carry = None
                if self.window_tokens:
                    last_train_loss = self._log_train(tokens_per_s)
                if self.checkpoint_step != self.step:
                    self._validate_and_checkpoint(status="finished")
                else:
                    self._write_summary("finished")
            finally:
                if bar is not None:
                    bar.close()
                self._plot()
        return TrainResult(
            steps=self.step,
            epochs_done=self.step / self.steps_per_epoch,
            train_loss=last_train_loss,
            best_valid_loss=self.best_valid,
            valid_loss=self.last_valid,
            tokens_per_s=session_tokens / max(session_train_s, 1e-9),
            elapsed_s=self.elapsed_s(),
        )

    def _train_step(self, batch: Any) -> tuple[float, int]:
        lr = lr_at(self.config, self.step, self.progress())
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        loss, n_tokens, carry = self.task.train_loss(self.model, batch, self.carry)
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            self._non_finite(f"loss became {loss_value}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.clip_norm > 0:
            norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_norm)
            if not math.isfinite(float(norm)):
                self._non_finite(f"gradient norm became {float(norm)}")
        self.optimizer.step()
        self.carry = detach_state(carry)
        self.step += 1
        self.position += 1
        return loss_value, n_tokens

    def _non_finite(self, what: str) -> None:
        self._write_summary("stopped: non-finite loss")
        kept = (
            f"the last good checkpoint (step {self.checkpoint_step}) is kept in {self.run.path}"
            if self.checkpoint_step is not None
            else "no checkpoint had been written yet"
        )
        raise NonFiniteLossError(
            f"{what} at step {self.step + 1}; training stopped and {kept}; "
            "try a lower --lr or a smaller --clip"
        )

    def _progress_bar(self) -> Any:
        if self.quiet or not sys.stdout.isatty():
            return None
        from tqdm import tqdm

        c = self.config
        totals = [c.max_steps] if c.max_steps else []
        if c.epochs:
            totals.append(c.epochs * self.steps_per_epoch)
        total = min(totals) if totals else None
        return tqdm(total=total, initial=self.step, unit="step", dynamic_ncols=True, leave=False)

    # ----------------------------------------------------------------- evaluation and logs
    def evaluate(self, split: str = "valid") -> float:
        """Mean loss (nats/token) of the current weights on ``split``."""
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            loss = float(self.task.evaluate(self.model, split))
        self.model.train(was_training)
        return loss

    def _validate_and_checkpoint(self, status: str = "running") -> None:
        loss = self.evaluate("valid")
        self.last_valid = loss
        self._log("valid", loss)
        improved = math.isfinite(loss) and (self.best_valid is None or loss < self.best_valid)
        if improved:
            self.best_valid, self.best_step = loss, self.step
            self.run.save_tensors(BEST, self.model.state_dict(), {"step": self.step, "loss": loss})
        self.report(
            f"step {self.step}: valid loss {loss:.4f} nats/token"
            + (" (best so far, saved)" if improved else f" (best {self.best_valid:.4f})")
        )
        self._save_checkpoint(status)

    def _log_train(self, tokens_per_s: float) -> float:
        loss = self.window_loss / max(self.window_tokens, 1)
        self._log("train", loss, tokens_per_s=tokens_per_s)
        self.window_loss, self.window_tokens = 0.0, 0
        return loss

    def _log(self, split: str, loss: float, **extra: float) -> None:
        record = {"step": self.step, "epoch": self.epoch, "split": split, "loss": loss}
        record["lr"] = self.optimizer.param_groups[0]["lr"]
        record.update(extra)
        record["elapsed_s"] = round(self.elapsed_s(), 3)
        self.run.append_jsonl(METRICS, record)

    def _write_summary(self, status: str) -> None:
        self.run.write_json(
            SUMMARY,
            {
                "status": status,
                "step": self.step,
                "epoch": self.epoch,
                "checkpoint_step": self.checkpoint_step,
                "best_valid_loss": self.best_valid,
                "best_step": self.best_step,
                "elapsed_s": round(self.elapsed_s(), 3),
            },
        )

    def _plot(self) -> None:
        records = self.run.read_jsonl(METRICS)
        if records:
            plot_losses(records, self.run.file(PLOT))

    # ----------------------------------------------------------------- checkpoints
    def _save_checkpoint(self, status: str) -> None:
        """Write ``last.safetensors`` (one atomic file) and the readable summary."""
        tensors, opt_skeleton = flatten(self.optimizer.state_dict(), "optimizer")
        carry_tensors, carry_skeleton = flatten(self.carry, "carry")
        tensors.update(carry_tensors)
        tensors.update({f"model.{k}": v for k, v in self.model.state_dict().items()})
        tensors["rng.torch"] = torch.get_rng_state()
        if self.best_step is None and self.last_valid is None:
            # Never validated: the last weights are the best we have for generate/eval.
            self.run.save_tensors(BEST, self.model.state_dict(), {"step": self.step})
        state = {
            "step": self.step,
            "epoch": self.epoch,
            "position": self.position,
            "elapsed_s": self.elapsed_s(),
            "best_valid": self.best_valid,
            "best_step": self.best_step,
            "last_valid": self.last_valid,
            "window": [self.window_loss, self.window_tokens],
            "python_rng": flatten(random.getstate(), "py")[1],
            "optimizer": opt_skeleton,
            "carry": carry_skeleton,
        }
        self.run.save_tensors(CHECKPOINT, tensors, state)
        self.checkpoint_step = self.step
        self._write_summary(status)

    def _load_checkpoint(self) -> None:
        tensors, state = self.run.load_tensors(CHECKPOINT)
        weights = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
        try:
            self.model.load_state_dict(weights)
            self.optimizer.load_state_dict(unflatten(state["optimizer"], tensors))
        except (RuntimeError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise RunDirError(
                f"{self.run.file(CHECKPOINT)} does not fit this model: {first}"
            ) from None
        self.carry = unflatten(state["carry"], tensors)
        torch.set_rng_state(tensors["rng.torch"])
        random.setstate(unflatten(state["python_rng"], {}))
        self.step, self.epoch, self.position = state["step"], state["epoch"], state["position"]
        self.elapsed = state["elapsed_s"]
        self.best_valid, self.best_step = state["best_valid"], state["best_step"]
        self.last_valid = state["last_valid"]
        self.window_loss, self.window_tokens = state["window"]
        self.checkpoint_step = self.step
        # Records written after the checkpoint belong to a session that is being replayed.
        records = [r for r in self.run.read_jsonl(METRICS) if r["step"] <= self.step]
        self.run.write_jsonl(METRICS, records)
        self.report(f"resumed {self.run.path} at step {self.step} (epoch {self.epoch})")


def plot_losses(records: list[dict[str, Any]], path: Any) -> None:
    """Draw training and validation loss against step into a PNG at ``path``."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global figure state

    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.add_subplot()
    for split in ("train", "valid"):
        points = [(r["step"], r["loss"]) for r in records if r["split"] == split]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o" if split == "valid" else None, label=split)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def config_dict(config: TrainConfig) -> dict[str, Any]:
    """``config`` as a JSON-able dict."""
    data = asdict(config)
    data["betas"] = list(config.betas)
    return data
