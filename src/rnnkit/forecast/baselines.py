"""Classical baselines, forecast from the same origins as the network, each a Gaussian per step.

- ``seasonal-naive``: the value one season back; its spread is the standard deviation of the
  history's seasonal differences times ``sqrt(k + 1)``, ``k`` whole seasons ahead (Hyndman &
  Athanasopoulos, *Forecasting: Principles and Practice*, 3rd ed., sec. 5.5).
- ``holt-winters``: additive error, additive season, no trend (statsmodels' ``ETSModel``),
  with its analytic prediction variance.
- ``arima``: ARIMA(2,0,1) fitted by statsmodels on the seasonally differenced history, i.e. a
  SARIMA(2,0,1)(0,1,0)_m; statsmodels' own seasonal state space took 8-30 s per fit on the
  default data, this 0.1 s. Steps more than one season ahead add the variances of the
  differences they sum (their covariance is left out).

Each fits on the last ``history`` steps before the origin (missing values interpolated).
statsmodels is the optional extra ``rnnkit[forecast]``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from rnnkit.errors import require_extra
from rnnkit.forecast.metrics import GaussianForecast


def _statsmodels() -> Any:
    """A context that keeps BLAS on one thread (statsmodels' fits are small; spare BLAS threads
    only spin on a busy machine: 8 s instead of 0.1 s per ARIMA fit), or one line saying what
    to install."""
    purpose = "the Holt-Winters and ARIMA baselines (or leave out --baselines)"
    require_extra("statsmodels", "forecast", purpose)
    require_extra("threadpoolctl", "forecast", purpose)
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")


def seasonal_naive(history: np.ndarray, horizon: int, season: int) -> GaussianForecast:
    """The last season repeated; spread from the history's seasonal differences."""
    m = season if len(history) > season else 1
    steps = np.arange(horizon)
    loc = history[len(history) - m + steps % m]
    sigma = float(np.std(history[m:] - history[:-m])) or 1e-9
    return GaussianForecast(loc, sigma * np.sqrt(steps // m + 1))


def holt_winters(history: np.ndarray, horizon: int, season: int) -> GaussianForecast:
    """Additive Holt-Winters (ETS(A,N,A)) with statsmodels; ETS(A,N,N) without a season."""
    single_thread = _statsmodels()
    import pandas as pd
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    seasonal = "add" if 1 < season and 2 * season <= len(history) else None
    n = len(history)
    with warnings.catch_warnings(), single_thread:
        warnings.simplefilter("ignore")
        model = ETSModel(
            pd.Series(history), error="add", trend=None, seasonal=seasonal,
            seasonal_periods=season if seasonal else None,
        )  # fmt: skip
        fit = model.fit(disp=False)
        pred = fit.get_prediction(start=n, end=n + horizon - 1)
    std = np.sqrt(np.maximum(np.asarray(pred.forecast_variance), 1e-18))
    return GaussianForecast(np.asarray(pred.predicted_mean), std)


def arima(history: np.ndarray, horizon: int, season: int) -> GaussianForecast:
    """ARIMA(2,0,1) on the seasonal differences, integrated back (see the module docstring)."""
    single_thread = _statsmodels()
    from statsmodels.tsa.arima.model import ARIMA

    m = season if 1 < season < len(history) // 2 else 1
    diffs = history[m:] - history[:-m]
    with warnings.catch_warnings(), single_thread:
        warnings.simplefilter("ignore")
        fit = ARIMA(diffs, order=(2, 0, 1), trend="c" if m > 1 else "n").fit()
        forecast = fit.get_forecast(horizon)
    d_loc = np.asarray(forecast.predicted_mean)
    d_var = np.asarray(forecast.se_mean) ** 2
    path = np.concatenate([history, np.zeros(horizon)])
    var = np.zeros(horizon)
    n = len(history)
    for h in range(horizon):
        path[n + h] = path[n + h - m] + d_loc[h]
        var[h] = (var[h - m] if h >= m else 0.0) + d_var[h]
    return GaussianForecast(path[n:], np.sqrt(np.maximum(var, 1e-18)))


BASELINES: dict[str, Callable[[np.ndarray, int, int], GaussianForecast]] = {
    "seasonal-naive": seasonal_naive,
    "holt-winters": holt_winters,
    "arima": arima,
}
