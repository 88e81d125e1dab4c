"""The shared training loop: budgets, schedule, clipping, evaluation, checkpoints, exact resume.

Any task plugs in by giving :class:`Trainer` a model and a *task object* with four members
(see :class:`TrainingTask`); the trainer knows nothing else about the task::

    class MyTask:
        name = "translate"                      # written to run.json; resume checks it
        loss_unit = "nats/token"                # optional: what the loss is per, for the
                                                # progress line (default "nats/token")

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

        def check_carry(self, model, carry):    # optional: what is wrong with a carry read
            ...                                 # from a checkpoint, or None

        def selection_score(self, model):       # optional: the validation figure that picks
            ...                                 # the weights kept as best, a Score (or None:
                                                # the loss picks); under no_grad, model.eval()

        def check_health(self, model, carry):   # optional: after each validation, a warning
            ...                                 # about the training state (e.g. saturated
                                                # units), or None; reported once per session

    run = RunDir.create("runs/x", task="translate")   # or RunDir.open(...) to resume
    trainer = Trainer(model, task, TrainConfig(max_minutes=5), run)
    result = trainer.fit(resume=False)

The run directory then holds (besides the caller's ``config.json``/``vocab.json``):

- ``model.safetensors``: the weights with the best validation loss so far (last, if never
  validated), or, for a task with ``selection_score``, with the best such score (e.g. the
  CIDEr-D of greedy captions; the loss is still computed and logged, and NT-ASGD's trigger
  keeps watching the loss); with ``TrainConfig.ema`` the weights evaluated and kept are the
  exponential moving average of the trained ones (NT-ASGD: its average, once it averages);
- ``last.safetensors``: everything to resume (weights under ``model.``, optimizer
  tensors under ``optimizer.``, the exponential average under ``ema.``, RNG state, the
  carried state) with the trainer's JSON state
  (step, epoch, position in the epoch, elapsed time, best loss, Python RNG, optimizer layout)
  in the file's metadata, one file so it is written in one atomic step;
- ``trainer.json``: a readable summary (status, step, best step and its validation loss; with
  ``selection_score`` also ``selected_on`` and ``best_score``);
- ``metrics.jsonl``: one JSON object a line: step, epoch, split, loss (nats/token), lr,
  tokens_per_s (train records), score (valid records of a task with ``selection_score``),
  elapsed_s; ``loss.png``: the loss curves.

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

from rnnkit.errors import ConfigError, NonFiniteLossError, RunDirError, TrainingInterrupted
from rnnkit.plots import plot_losses
from rnnkit.runs import BEST, CHECKPOINT, CONFIG, METRICS, PLOT, SUMMARY, RunDir
from rnnkit.training.config import DEFAULT_LOSS_UNIT, Runtime, TrainConfig, config_dict
from rnnkit.training.distributed import Group, TaskStep, join, to_device
from rnnkit.training.optim import (
    ExponentialAverage,
    averaged_weights,
    lr_at,
    make_optimizer,
    observe_validation,
)
from rnnkit.training.state import load_training_state, save_training_state

logger = logging.getLogger(__name__)


class TrainingTask(Protocol):
    """What :class:`Trainer` needs from a task (see the module docstring)."""

    name: str

    def steps_per_epoch(self) -> int: ...

    def train_batches(self, epoch: int, start: int) -> Iterable[Any]: ...

    def train_loss(self, model: nn.Module, batch: Any, carry: Any) -> tuple[Tensor, int, Any]: ...

    def evaluate(self, model: nn.Module, split: str) -> float: ...


@dataclass(frozen=True)
class Score:
    """A validation figure that chooses the checkpoint kept as best (``selection_score``)."""

    name: str  # how reports call it, e.g. "CIDEr-D"
    value: float
    higher_is_better: bool  # True: a larger value is better (a metric); False: a loss

    def beats(self, best: float | None) -> bool:
        """Whether this score is better than ``best`` (None: nothing kept yet)."""
        if not math.isfinite(self.value):
            return False
        if best is None:
            return True
        return self.value > best if self.higher_is_better else self.value < best


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
    best_step: int | None = None  # the step of the weights kept as best (model.safetensors)
    best_score: float | None = None  # their selection score (tasks with selection_score)
    selected_on: str | None = None  # the selection score's name (None: the validation loss)


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
    runtime: Runtime | None = None,
    clock: Callable[[], float] = time.monotonic,
    on_step: Callable[[Trainer], None] | None = None,
) -> TrainResult:
    """Seed, build the model and train it on ``task`` into ``run`` (or continue the run).

    What every application's ``train()`` ends with, once its data, task and run directory are
    ready: the seed fixes the initial weights (the same on every rank); ``build_model`` may start
    embeddings from word vectors (a resumed run gets its weights from the checkpoint instead).
    ``runtime`` picks the device and precision; under torchrun every rank calls this, and the
    trainer joins the ranks (see ``docs/distributed.md``). ``clock``: the trainer's seconds
    counter (``time.process_time`` for budgets in CPU seconds). ``on_step(trainer)`` is called
    after every optimizer step, after that step's validation if it had one (tools, benchmarks).
    """
    with join(runtime) as group:
        seed_everything(config.seed)
        model = build_model()
        if group.writer:
            (report or logger.info)(f"model: {sum(p.numel() for p in model.parameters()):,} "
                                    f"parameters, on {where_to_train(runtime, group)}")  # fmt: skip
        trainer = Trainer(model, task, config, run, quiet=quiet, report=report, group=group,
                          clock=clock, on_step=on_step)  # fmt: skip
        return trainer.fit(resume=resume)


def where_to_train(runtime: Runtime | None, group: Group) -> str:
    """The device a run trains on, for its first report line; with no ``runtime`` given (the
    Python API's default, the CPU) on a machine with a GPU, also how to train there: a training
    benchmark ran twice on the CPU of a GPU machine that way before this line said so."""
    where = str(group.device)
    if runtime is None and torch.cuda.is_available():
        where += " (the default; runtime=Runtime(device='auto') trains on the GPU)"
    return where


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
        group: this process's place among the ranks, its device and precision (default: alone,
            on the CPU, fp32). With several ranks the task must have ``shard(rank, world_size)``.
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
        group: Group | None = None,
    ) -> None:
        self.group = group or Group(Runtime(device="cpu"))
        self.model = model.to(self.group.device)
        self.task = task
        self.loss_unit = getattr(task, "loss_unit", DEFAULT_LOSS_UNIT)  # what the loss is per
        self.config = config
        self.run = run
        self.quiet = quiet or not self.group.writer
        self.report = (report or logger.info) if self.group.writer else _silent
        self.on_step = on_step
        self.clock = clock
        if self.group.world_size > 1:
            shard = getattr(task, "shard", None)
            if shard is None:
                raise ConfigError(f"the {task.name} task cannot train in several processes yet")
            shard(self.group.rank, self.group.world_size)
        self.step_module = self.group.wrap(TaskStep(self.model, task))
        self.scaler = self.group.grad_scaler()
        self.optimizer = make_optimizer(model, config)
        # The weights evaluated and kept as best; the raw ones train on (and go to last.*).
        self.ema = ExponentialAverage(self.model, config.ema) if config.ema else None
        self.steps_per_epoch = task.steps_per_epoch()
        if self.steps_per_epoch < 1:
            raise ValueError(f"task {task.name!r} has no training batches")
        # Position in the run; all of it goes into checkpoints.
        self.step = 0
        self.epoch = 0
        self.position = 0  # batches of the current epoch already trained on
        self.elapsed = 0.0  # seconds of the run before this session
        self.best_valid: float | None = None  # validation loss of the weights kept as best
        self.best_step: int | None = None
        self.best_score: float | None = None  # their selection score (task.selection_score)
        self.selected_on: str | None = None  # its name, once the task has given one
        self.last_valid: float | None = None
        self.checkpoint_step: int | None = None
        self.validated_step: int | None = None  # the step of the latest validation
        self.carry: Any = None
        self.warned = False  # a check_health warning was reported in this session
        self.window_loss = 0.0  # summed training loss since the last train record
        self.window_tokens = 0  # tokens behind window_loss
        self._stop_requested = False
        self._stop_agreed = False  # some rank was asked to stop (all ranks stop at this step)
        self._session_start = clock()
        self._agreed_elapsed: float | None = None  # rank 0's clock, as of the last step

    # ----------------------------------------------------------------- budget and schedule
    def elapsed_s(self) -> float:
        """Wall-clock seconds of the whole run (earlier sessions included); with several ranks,
        rank 0's as of the last step, so that every rank decides budgets and rates alike."""
        if self.group.world_size > 1:
            return self.elapsed if self._agreed_elapsed is None else self._agreed_elapsed
        return self.elapsed + self.clock() - self._session_start

    def progress(self) -> float:
        """Fraction (0..1) of the schedule done (:meth:`TrainConfig.progress`)."""
        return self.config.progress(self.step, self.elapsed_s(), self.steps_per_epoch)

    def _budget_spent(self) -> bool:
        c = self.config
        return (
            (c.max_steps is not None and self.step >= c.max_steps)
            or (c.epochs is not None and self.epoch >= c.epochs)
            or (c.max_minutes is not None and self.elapsed_s() >= 60.0 * c.max_minutes)
            or self._out_of_patience()
            or self._no_time_for_refit()
        )

    def _no_time_for_refit(self) -> bool:
        """With ``reserve_refit``: retraining up to the best checkpoint, at the pace so far
        (validations included, so the estimate errs on the long side), would end past the
        budget."""
        c = self.config
        if not c.reserve_refit or c.max_minutes is None or not self.best_step or not self.step:
            return False
        elapsed = self.elapsed_s()
        return elapsed + self.best_step * elapsed / self.step >= 60.0 * c.max_minutes

    def _out_of_patience(self) -> bool:
        """``patience`` validations have passed since the best one (early stopping)."""
        c = self.config
        if c.patience is None or not c.eval_every or self.best_step is None:
            return False
        return self.step - self.best_step >= c.patience * c.eval_every

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
        self.run.lock()  # no-op when runs.start/resume took it; released when fit ends
        try:
            return self._fit(resume)
        finally:
            self.run.unlock()

    def _fit(self, resume: bool) -> TrainResult:
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
                        asked = stop.signal is not None or self._stop_requested
                        loss_value, n_tokens = self._train_step(batch, stop=asked)
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
                        if self._stop_now(stop.signal is not None or self._stop_requested):
                            self._save_checkpoint("interrupted")
                            self.group.barrier()  # rank 0 has written before anyone exits
                            raise TrainingInterrupted(
                                f"interrupted at step {self.step}; checkpoint saved in "
                                f"{self.run.path}; continue with --resume {self.run.path}"
                            )
                    else:  # the epoch ran to its end
                        self.epoch += 1
                        self.position = 0
                        self.carry = None
                        if (self.config.eval_each_epoch and self.validated_step != self.step
                                and not self._budget_spent()):  # fmt: skip
                            self._validate_and_checkpoint()  # (a spent budget validates below)
                if self.window_tokens:
                    last_train_loss = self._log_train(tokens_per_s)
                if self.validated_step != self.step:  # (a run stopped at its last step and
                    self._validate_and_checkpoint(status="finished")  # resumed validates too)
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
            best_step=self.best_step,
            best_score=self.best_score,
            selected_on=self.selected_on,
        )

    def _train_step(self, batch: Any, *, stop: bool = False) -> tuple[float, int]:
        """One optimizer step on this rank's share of a global batch; returns the global batch's
        mean loss and its tokens (the ranks agree on them, and on ``stop``, before backward)."""
        lr = lr_at(self.config, self.step, self.progress())
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        if self.group.device.type != "cpu":
            batch = to_device(batch, self.group.device)
        with self.group.autocast():
            loss, n_tokens, carry = self.step_module(batch, self.carry)
        loss_value = float(loss.detach())
        if self.group.world_size > 1:
            clock = self.elapsed + self.clock() - self._session_start if self.group.writer else 0.0
            tokens, loss_sum, stops, clock = self.group.agree(
                [n_tokens, loss_value * n_tokens, float(stop), clock]
            )
            self._stop_agreed = stops > 0
            self._agreed_elapsed = clock
            # DDP averages gradients over ranks; weighting each rank's mean by its share of the
            # tokens makes that average the gradient of the global batch's mean loss.
            loss = loss * (n_tokens * self.group.world_size / tokens)
            loss_value, n_tokens = loss_sum / tokens, int(tokens)
        if not math.isfinite(loss_value):
            self._non_finite(f"loss became {loss_value}")
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        average = getattr(self.step_module, "average_gradients", None)
        if average is not None:  # (shared-memory data parallelism; DDP averaged in backward)
            average()
        if self.config.clip_norm > 0:
            norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_norm)
            if not math.isfinite(float(norm)) and self.scaler is None:
                self._non_finite(f"gradient norm became {float(norm)}")
        stepped = True
        if self.scaler is not None:
            # (get_scale() waits for the GPU: only asked when the average needs to know.)
            scale = self.scaler.get_scale() if self.ema is not None else 0.0
            self.scaler.step(self.optimizer)  # skips steps with inf/nan gradients (fp16)
            self.scaler.update()
            if self.ema is not None:
                stepped = self.scaler.get_scale() >= scale  # a skipped step lowers the scale
        else:
            self.optimizer.step()
        if self.ema is not None and stepped:  # the average follows the steps taken
            self.ema.update()
        self.carry = detach_state(carry)
        self.step += 1
        self.position += 1
        return loss_value, n_tokens

    def _non_finite(self, what: str, *, when: str | None = None) -> None:
        if self.group.writer:
            self._write_summary("stopped: non-finite loss")
        self.group.barrier()  # every rank saw the same global loss and norm: all stop here
        kept = (
            f"the last good checkpoint (step {self.checkpoint_step}) is kept in {self.run.path}"
            if self.checkpoint_step is not None
            else "no checkpoint had been written yet"
        )
        raise NonFiniteLossError(
            f"{what} {when or f'at step {self.step + 1}'}; training stopped and {kept}; "
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
        # Every rank evaluates the whole split with the same weights: one number, the
        # single-process one, and no rank idles at a barrier that could time out.
        with torch.no_grad(), self.group.autocast():
            loss = float(self.task.evaluate(self.model, split))
        self.model.train(was_training)
        return loss

    def selection_score(self) -> Score | None:
        """The task's score of the current weights on validation, which chooses the weights
        kept as best; None when the task has no ``selection_score`` (or returns None): then the
        validation loss chooses."""
        select = getattr(self.task, "selection_score", None)
        if select is None:
            return None
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad(), self.group.autocast():
            score = select(self.model)
        self.model.train(was_training)
        return score

    def evaluated_weights(self) -> Any:
        """A context in which the model holds the weights that validation scores and keeps:
        the moving average (``ema``), NT-ASGD's average once it averages, else the weights as
        trained (an ``on_step`` hook that stores validated weights reads them inside it)."""
        return averaged_weights(self.optimizer, self.ema)

    def _improves(self, loss: float, score: Score | None) -> bool:
        """Whether the weights just validated replace the best ones."""
        if not math.isfinite(loss):
            return False
        if self.config.keep == "last":  # the latest finite weights, better or not
            return True
        if score is None:
            return self.best_valid is None or loss < self.best_valid
        return score.beats(self.best_score)

    def _validate_and_checkpoint(self, status: str = "running") -> None:
        with self.evaluated_weights():
            loss = self.evaluate("valid")
            if not math.isfinite(loss):
                self._log("valid", loss)
                self._non_finite(f"validation loss became {loss}", when=f"at step {self.step}")
            score = self.selection_score()
            self._log("valid", loss, **({} if score is None else {"score": score.value}))
            self.last_valid, self.validated_step = loss, self.step
            improved = self._improves(loss, score)
            if score is not None:
                self.selected_on = score.name
            if improved:
                self.best_valid, self.best_step = loss, self.step
                meta: dict[str, Any] = {"step": self.step, "loss": loss}
                if score is not None:
                    self.best_score = meta["score"] = score.value
                if self.group.writer:
                    self.run.save_tensors(BEST, self.model.state_dict(), meta)
        # NT-ASGD's trigger watches the loss, whatever chooses the best weights.
        if observe_validation(self.optimizer, loss):
            self.report(f"step {self.step}: validation stalled; averaging the weights (NT-ASGD)")
        if improved:
            verdict = " (best so far, saved)"
        elif self.best_valid is None:
            verdict = " (not finite: no weights saved as best)"
        elif score is not None and self.best_score is not None:
            verdict = f" (best {self.best_score:.4f} at step {self.best_step})"
        else:
            verdict = f" (best {self.best_valid:.4f})"
        line = f"step {self.step}: valid loss {loss:.4f} {self.loss_unit}"
        if score is not None:
            line += f", valid {score.name} {score.value:.4f}"
        self.report(line + verdict)
        self._warn_if_unhealthy()
        self._save_checkpoint(status)

    def _warn_if_unhealthy(self) -> None:
        """Report the task's ``check_health`` warning, the first time it has one this session."""
        check = getattr(self.task, "check_health", None)
        if self.warned or check is None:
            return
        warning = check(self.model, self.carry)
        if warning:
            self.warned = True
            self.report(f"step {self.step}: warning: {warning}")

    def _log_train(self, tokens_per_s: float) -> float:
        loss = self.window_loss / max(self.window_tokens, 1)
        self._log("train", loss, tokens_per_s=tokens_per_s)
        self.window_loss, self.window_tokens = 0.0, 0
        return loss

    def _log(self, split: str, loss: float, **extra: float) -> None:
        if not self.group.writer:
            return
        record = {"step": self.step, "epoch": self.epoch, "split": split, "loss": loss}
        record["lr"] = self.optimizer.param_groups[0]["lr"]
        record.update(extra)
        record["elapsed_s"] = round(self.elapsed_s(), 3)
        self.run.append_jsonl(METRICS, record)

    def _write_summary(self, status: str) -> None:
        if not self.group.writer:
            return
        summary = {
            "status": status,
            "step": self.step,
            "epoch": self.epoch,
            "checkpoint_step": self.checkpoint_step,
            "best_valid_loss": self.best_valid,
            "best_step": self.best_step,
            "elapsed_s": round(self.elapsed_s(), 3),
        }
        if self.selected_on is not None:  # the weights kept as best were chosen on this score
            summary.update(selected_on=self.selected_on, best_score=self.best_score)
        self.run.write_json(SUMMARY, summary)

    def _plot(self) -> None:
        records = self.run.read_jsonl(METRICS) if self.group.writer else []
        if records:
            plot_losses(records, self.run.file(PLOT), unit=self.loss_unit)

    # ----------------------------------------------------------------- checkpoints
    def _save_checkpoint(self, status: str) -> None:
        """Write ``last.safetensors`` (one atomic file) and the readable summary (rank 0; every
        rank calls this, as it gathers the ranks' carried states and random states)."""
        carry = self._gathered_carry()
        if not self.group.writer:
            self.checkpoint_step = self.step
            return
        if self.best_step is None and self.last_valid is None:
            # Never validated: the last weights are the best we have for generate/eval.
            with self.evaluated_weights():
                self.run.save_tensors(BEST, self.model.state_dict(), {"step": self.step})
        position = {
            "step": self.step,
            "epoch": self.epoch,
            "position": self.position,
            "elapsed_s": self.elapsed_s(),
            "best_valid": self.best_valid,
            "best_step": self.best_step,
            "last_valid": self.last_valid,
            "validated_step": self.validated_step,
            "window": [self.window_loss, self.window_tokens],
            "world_size": self.group.world_size,
        }
        if self.selected_on is not None:
            position.update(selected_on=self.selected_on, best_score=self.best_score)
        save_training_state(
            self.run, CHECKPOINT, model=self.model, optimizer=self.optimizer, carry=carry,
            state=position, averages=self.ema,
        )  # fmt: skip
        self.checkpoint_step = self.step
        self._write_summary(status)

    def _load_checkpoint(self) -> None:
        carry, state = load_training_state(
            self.run, CHECKPOINT, model=self.model, optimizer=self.optimizer, averages=self.ema
        )
        self._check_world_size(state.get("world_size", 1))
        self.carry = self._own_carry(carry)
        self.step, self.epoch, self.position = state["step"], state["epoch"], state["position"]
        self.elapsed = state["elapsed_s"]
        self.best_valid, self.best_step = state["best_valid"], state["best_step"]
        self.last_valid = state["last_valid"]
        # Older checkpoints lack it; most of them were written by a validation.
        self.validated_step = state.get("validated_step", self.step)
        # Checkpoints of runs chosen on the loss have neither: the next score sets the best.
        self.selected_on, self.best_score = state.get("selected_on"), state.get("best_score")
        self.window_loss, self.window_tokens = state["window"]
        check_carry = getattr(self.task, "check_carry", None)
        problem = None if check_carry is None else check_carry(self.model, self.carry)
        if problem is not None:
            raise RunDirError(
                f"{self.run.file(CHECKPOINT)} is damaged ({problem}); restore it or start a new run"
            )
        self.checkpoint_step = self.step
        # Records written after the checkpoint belong to a session that is being replayed.
        if self.group.writer:
            records = [r for r in self.run.read_jsonl(METRICS) if r.get("step", 0) <= self.step]
            self.run.write_jsonl(METRICS, records)
            # Only now, with the checkpoint loaded, does the run take its new budget: a resume
            # that failed before this point leaves config.json as it was.
            if self.run.has(CONFIG):
                config = self.run.read_config()
                config["train"] = config_dict(self.config)
                self.run.write_config(config)
        self.report(f"resumed {self.run.path} at step {self.step} (epoch {self.epoch})")

    # ----------------------------------------------------------------- several ranks
    def _stop_now(self, asked_here: bool) -> bool:
        """Whether to stop after this step: alone, when asked; with several ranks, when any rank
        had been asked by the time the ranks last agreed (so all stop at the same step)."""
        return self._stop_agreed if self.group.world_size > 1 else asked_here

    def _gathered_carry(self) -> Any:
        """What a checkpoint stores as the carried state: this process's, or with several ranks
        every rank's carried state and torch random state, in rank order."""
        if self.group.world_size == 1:
            return self.carry
        mine = {"carry": to_device(self.carry, torch.device("cpu")), "rng": torch.get_rng_state()}
        return {"ranks": self.group.gather(mine)}

    def _own_carry(self, saved: Any) -> Any:
        """This rank's carried state from :meth:`_gathered_carry`'s (restores its random state)."""
        if self.group.world_size == 1:
            return saved
        mine = saved["ranks"][self.group.rank]
        torch.set_rng_state(mine["rng"])
        return to_device(mine["carry"], self.group.device)

    def _check_world_size(self, saved: int) -> None:
        """Refuse a resume with another number of processes (see ``docs/distributed.md``)."""
        if saved != self.group.world_size:
            raise RunDirError(
                f"{self.run.path} was trained by {saved} process(es) and this is "
                f"{self.group.world_size}; the carried states and random streams are per process, "
                f"so resume it with {saved} (--nproc {saved} or torchrun --nproc_per_node ...)"
            )


def _silent(message: str) -> None:
    """The report of ranks other than 0 (they print nothing)."""
