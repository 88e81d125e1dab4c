"""Time-series forecasting with a DeepAR-style recurrent network (the ``rnnkit forecast``
application).

Rooms: :mod:`~rnnkit.forecast.recipe` (the defaults), :mod:`~rnnkit.forecast.data` (CSV files on
a time grid, splits) with :mod:`~rnnkit.forecast.sources` (named datasets),
:mod:`~rnnkit.forecast.model` (``DeepAR``) with :mod:`~rnnkit.forecast.likelihoods`,
:mod:`~rnnkit.forecast.task` (windows, the ``TrainingTask``), :mod:`~rnnkit.forecast.metrics` and
:mod:`~rnnkit.forecast.baselines` (backtest scoring), :mod:`~rnnkit.forecast.api` (``train``,
``load``, ``predict``, ``backtest``), :mod:`~rnnkit.forecast.plots`, :mod:`~rnnkit.forecast.cli`.

The API is importable from here (``from rnnkit.forecast import ForecastRecipe, train``); it is
loaded on first use, so the command line can read the recipe's defaults without importing torch.
"""

from __future__ import annotations

from rnnkit.forecast.recipe import ForecastRecipe
from rnnkit.lazy import lazy_attributes

_API = ("Forecaster", "backtest", "load", "predict", "train")

__all__ = ["ForecastRecipe", *_API]
__getattr__ = lazy_attributes(__name__, dict.fromkeys(_API, "rnnkit.forecast.api"))
