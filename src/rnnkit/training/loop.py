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
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from rnnkit.errors import NonFiniteLossError, TrainingInterrupted
from rnnkit.plots import plot_losses
from rnnkit.runs import BEST, CHECKPOINT, METRICS, PLOT, SUMMARY, RunDir
from rnnkit.training.config import TrainConfig
from rnnkit.training.optim import averaged_weights, lr_at, make_optimizer, observe_validation
from rnnkit.training.state import load_training_state, save_training_state

logger = logging.getLogger(__name__)


class TrainingTask(Protocol):
    """What :class:`Trainer` needs from a task (see the module docstring)."""

    name: str

    def steps_per_epoch(self) -> int: ...

    def train_batches(self, epoch: int, start: int) -> Iterable[Any]: ...

    def train_loss(self, model: nn.Module, batch: Any, carry: Any) -> tuple[Tensor, int, Any]: ...

    def evaluate(self, model: nn.Module, split: str) -> float: ...


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


def fit(
    run: RunDir,
    task: TrainingTask,
    config: TrainConfig,
    build_model: Callable[[], nn.Module],
    *,
    resume: bool = False,
    quiet: bool = True,
    report: Callable[[str], None] | None = None,
) -> TrainResult:
    """Seed, build the model and train it on ``task`` into ``run`` (or continue the run).

    What every application's ``train()`` ends with, once its data, task and run directory are
    ready: the seed fixes the initial weights; ``build_model`` may start embeddings from word
    vectors (a resumed run gets its weights from the checkpoint instead).
    """
    seed_everything(config.seed)
    model = build_model()
    (report or logger.info)(f"model: {sum(p.numel() for p in model.parameters()):,} parameters")
    return Trainer(model, task, config, run, quiet=quiet, report=report).fit(resume=resume)


def detach_state(state: Any) -> Any:
    """``state`` (a tensor or a nested tuple/list of tensors, or None) cut from the graph."""
    if isinstance(state, Tensor):
        return state.detach()
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(s) for s in state)
    return state


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
        clock: seconds counter for budgets and throughput; ``time.process_time`` measures CPU
            time instead of wall-clock time (comparisons on a loaded machine).
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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model = model
        self.task = task
        self.config = config
        self.run = run
        self.quiet = quiet
        self.report = report or logger.info
        self.on_step = on_step
        self.clock = clock
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
        self._session_start = clock()

    # ----------------------------------------------------------------- budget and schedule
    def elapsed_s(self) -> float:
        """Wall-clock seconds of the whole run (earlier sessions included)."""
        return self.elapsed + self.clock() - self._session_start

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
        self._session_start = self.clock()
        session_tokens, session_train_s = 0, 0.0
        last_train_loss, tokens_per_s = float("nan"), 0.0
        bar = self._progress_bar()
        with _StopFlag() as stop:
            try:
                while not self._budget_spent():
                    for batch in self.task.train_batches(self.epoch, self.position):
                        if self._budget_spent():
                            break
                        t0 = self.clock()
                        loss_value, n_tokens = self._train_step(batch)
                        session_train_s += self.clock() - t0
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
        with averaged_weights(self.optimizer):  # NT-ASGD: its average is evaluated and saved
            loss = self.evaluate("valid")
            self.last_valid = loss
            self._log("valid", loss)
            improved = math.isfinite(loss) and (self.best_valid is None or loss < self.best_valid)
            if improved:
                self.best_valid, self.best_step = loss, self.step
                weights = self.model.state_dict()
                self.run.save_tensors(BEST, weights, {"step": self.step, "loss": loss})
        if observe_validation(self.optimizer, loss):
            self.report(f"step {self.step}: validation stalled; averaging the weights (NT-ASGD)")
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
        if self.best_step is None and self.last_valid is None:
            # Never validated: the last weights are the best we have for generate/eval.
            self.run.save_tensors(BEST, self.model.state_dict(), {"step": self.step})
        position = {
            "step": self.step,
            "epoch": self.epoch,
            "position": self.position,
            "elapsed_s": self.elapsed_s(),
            "best_valid": self.best_valid,
            "best_step": self.best_step,
            "last_valid": self.last_valid,
            "window": [self.window_loss, self.window_tokens],
        }
        save_training_state(
            self.run, CHECKPOINT, model=self.model, optimizer=self.optimizer, carry=self.carry,
            state=position,
        )  # fmt: skip
        self.checkpoint_step = self.step
        self._write_summary(status)

    def _load_checkpoint(self) -> None:
        self.carry, state = load_training_state(
            self.run, CHECKPOINT, model=self.model, optimizer=self.optimizer
        )
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
