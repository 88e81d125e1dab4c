"""Refit: after choosing the number of steps on the validation period, train anew on it too.

A forecaster's best weights (lowest validation NLL) come from some step ``n`` of its run. The
validation period, the data closest in time to the test period, is then never trained on. A
refit (``ForecastRecipe.refit``) trains a second model, from the same seed, on every window that
ends by the test period (training and validation), for the same ``n`` steps, and forecasts with
its last weights. Its learning rate (``refit_schedule``):

- ``"same"``: the first stage's, step for step: the first stage's schedule was a fraction
  ``p`` through at step ``n`` (of its clock budget, its steps or its epochs), so the refit's
  schedule is ``n / p`` steps long and stops at ``n`` (:func:`schedule_steps`);
- ``"anneal"``: a full decay over the ``n`` steps.

The first stage stays where it was trained (``RUN``, with its ``calibration.json``); the refit
is the run directory ``RUN/refit``, whose ``config.json`` has a ``refit`` section (the step
count, the schedule, where it came from) and which holds a copy of the first stage's
calibration (the refit has seen the validation period, so the spread is not chosen on it again;
in two nested checks, where a refit trained up to a held-out period was scored on it, the first
stage's factors were chosen among nine rules, among them the paths as trained, factors chosen for
the refit's own paths on the data it trained on, and a holdout refit's out of sample; a third
replica kept them against the spread adapted per origin: docs/forecasting.md, "The refit's
spread over three replicas").
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rnnkit import runs
from rnnkit.errors import RunDirError
from rnnkit.training import TrainConfig

REFIT = "refit"  # the refit's run directory inside the first stage's


def best_checkpoint(run: runs.RunDir) -> tuple[int, float]:
    """The step of the first stage's best checkpoint and the seconds into the run it was taken
    (from ``trainer.json`` and the validation record of ``metrics.jsonl``)."""
    summary = run.read_json(runs.SUMMARY) if run.has(runs.SUMMARY) else {}
    step = summary.get("best_step")
    if not step:
        raise RunDirError(
            f"{run.path} has no validated checkpoint to refit from (best step: {step}); "
            "train it longer (--resume) or without --refit"
        )
    for record in run.read_jsonl(runs.METRICS):
        if record.get("split") == "valid" and record.get("step") == step:
            return int(step), float(record["elapsed_s"])
    raise RunDirError(f"{run.file(runs.METRICS)} has no validation record of step {step}")


def refit_config(
    first: TrainConfig, *, schedule: str, step: int, elapsed_s: float, per_epoch: int
) -> tuple[TrainConfig, int | None]:
    """The refit's :class:`TrainConfig` (``step`` steps, validated only at the end) and the
    length of its schedule in steps (None: the ``step`` steps, "anneal")."""
    length = None
    if schedule == "same":
        progress = min(first.progress(step, elapsed_s, per_epoch), 1.0)
        length = max(step, round(step / max(progress, 1e-9)))
    config = dataclasses.replace(
        first, max_steps=step, max_minutes=None, epochs=None, patience=None, eval_every=0,
        schedule_steps=length, reserve_refit=False,
    )  # fmt: skip
    return config, length


def refit_section(recipe: Any, step: int, length: int | None, test_start: str) -> dict[str, Any]:
    """The ``refit`` section of the refit's ``config.json``."""
    return {
        "steps": step,
        "schedule": recipe.refit_schedule,
        "schedule_steps": length,
        "trained_until": test_start,
        "first_stage": "..",
    }
