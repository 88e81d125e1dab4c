"""Language models: train on a text, evaluate, generate (the ``rnnkit lm`` application).

Rooms: :mod:`~rnnkit.lm.recipe` (the defaults), :mod:`~rnnkit.lm.data` (corpus and splits),
:mod:`~rnnkit.lm.model` (``RNNLanguageModel``), :mod:`~rnnkit.lm.task` (the ``TrainingTask``),
:mod:`~rnnkit.lm.api` (``train``, ``load``, ``evaluate``, ``generate``), :mod:`~rnnkit.lm.cli`.

The API is importable from here (``from rnnkit.lm import LMRecipe, train``); it is loaded on
first use, so the command line can read the recipe's defaults without importing torch.
"""

from __future__ import annotations

from rnnkit.lazy import lazy_attributes
from rnnkit.lm.recipe import RECIPES, LMRecipe, get_recipe

_API = (
    "LoadedLM",
    "StepDetail",
    "encode_prime",
    "evaluate",
    "finetune",
    "generate",
    "generate_steps",
    "load",
    "train",
)

__all__ = ["RECIPES", "LMRecipe", "get_recipe", *_API]
__getattr__ = lazy_attributes(__name__, dict.fromkeys(_API, "rnnkit.lm.api"))
