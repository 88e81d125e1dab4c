"""Snapshot ensembles: one training run forecasts with several of its validated checkpoints.

On the default data the weights the trainer validates every ``eval_every`` steps differ a lot
from one validation to the next while the learning rate is high (validation MAE 0.068 to 0.124 F
between checkpoints 500 steps apart), and the lowest validation NLL is reached there: as the
rate decays the network fits the training year and the validation period gets worse (the last
weights of a 10-minute run forecast with an MAE of 0.09-0.12 F against 0.066-0.075 F for the
best). So the best checkpoint alone is one draw among similar ones; their paths pooled average
out part of what each got wrong (Huang et al. 2017, "Snapshot ensembles: train 1, get M for
free"), at no extra training.

:class:`SnapshotKeeper` is an ``on_step`` hook of the trainer: after each validation it keeps
the ``count`` weights with the lowest validation NLL seen so far in ``snapshots.safetensors`` of
the run directory (written atomically when that set changes, read back when a run resumes).
:func:`read_members` gives a loaded forecaster the ones besides the best (``model.safetensors``).
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor

from rnnkit import runs

SNAPSHOTS = "snapshots.safetensors"

Snapshot = tuple[float, int, dict[str, Tensor]]  # (validation loss, step, weights)


def read(run: runs.RunDir) -> list[Snapshot]:
    """The snapshots stored in ``run`` (none: an empty list), lowest validation loss first."""
    if not run.has(SNAPSHOTS):
        return []
    tensors, meta = run.load_tensors(SNAPSHOTS)
    runs.check_finite(run.file(SNAPSHOTS), tensors)
    kept = []
    for i, (loss, step) in enumerate(zip(meta["valid_loss"], meta["steps"])):
        prefix = f"{i}."
        weights = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        kept.append((float(loss), int(step), weights))
    return sorted(kept, key=lambda s: s[0])


def write(run: runs.RunDir, kept: list[Snapshot]) -> None:
    """Store ``kept`` in ``run`` (atomically)."""
    tensors = {f"{i}.{k}": v for i, (_, _, w) in enumerate(kept) for k, v in w.items()}
    meta = {"valid_loss": [s[0] for s in kept], "steps": [s[1] for s in kept]}
    run.save_tensors(SNAPSHOTS, tensors, meta)


class SnapshotKeeper:
    """Keeps the ``count`` validated weights of lowest validation loss (see the module
    docstring); call it after every optimizer step (``fit(..., on_step=keeper)``)."""

    def __init__(self, run: runs.RunDir, count: int, eval_every: int) -> None:
        self.run, self.count, self.eval_every = run, count, eval_every
        self.kept = read(run)

    def __call__(self, trainer: Any) -> None:
        if not self.eval_every or trainer.step % self.eval_every or not trainer.group.writer:
            return
        loss = trainer.last_valid
        if loss is None or not math.isfinite(loss) or trainer.step in (s[1] for s in self.kept):
            return
        if len(self.kept) >= self.count and loss >= self.kept[-1][0]:
            return
        with trainer.evaluated_weights():  # those the loss was of (the average, with ema)
            weights = {k: v.detach().cpu().clone() for k, v in trainer.model.state_dict().items()}
        self.kept = sorted([*self.kept, (loss, trainer.step, weights)], key=lambda s: s[0])
        self.kept = self.kept[: self.count]
        write(self.run, self.kept)


def read_members(run: runs.RunDir, count: int, best_step: int | None) -> list[dict[str, Tensor]]:
    """The weights of up to ``count - 1`` snapshots of ``run`` besides the best checkpoint (the
    one of ``best_step``, stored as ``model.safetensors``), lowest validation loss first."""
    others = [w for _, step, w in read(run) if step != best_step]
    return others[: max(0, count - 1)]


def split_samples(num_samples: int, members: int) -> list[int]:
    """``num_samples`` paths shared as evenly as possible among ``members`` models (the first
    get one more); models that would draw none are left out."""
    base, extra = divmod(num_samples, members)
    sizes = [base + (i < extra) for i in range(members)]
    return [n for n in sizes if n > 0]
