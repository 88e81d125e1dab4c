"""Time-series forecasting with a DeepAR-style recurrent network (``rnnkit forecast``).

``from rnnkit.forecast import ForecastRecipe, train, load, predict, backtest``; see
:mod:`rnnkit.forecast.api` and docs/forecasting.md. Names load on first use, so the command
line can read the recipe's defaults without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_API = ("train", "load", "predict", "backtest", "Forecaster")
__all__ = ["ForecastRecipe", *_API]


def __getattr__(name: str) -> Any:
    if name == "ForecastRecipe":
        return importlib.import_module("rnnkit.forecast.recipe").ForecastRecipe
    if name in _API:
        return getattr(importlib.import_module("rnnkit.forecast.api"), name)
    raise AttributeError(f"module 'rnnkit.forecast' has no attribute {name!r}")
