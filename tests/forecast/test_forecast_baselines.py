import sys

import numpy as np
import pytest

from rnnkit.errors import MissingExtraError
from rnnkit.forecast.baselines import arima, holt_winters, seasonal_naive


def _seasonal(n, season=6, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 5 + np.sin(2 * np.pi * t / season) + noise * rng.normal(size=n)


def test_seasonal_naive_repeats_the_last_season_with_growing_spread():
    history = np.array([1.0, 2.0, 3.0, 1.5, 2.0, 3.5])  # seasonal differences 0.5, 0, 0.5
    f = seasonal_naive(history, horizon=5, season=3)
    np.testing.assert_allclose(f.loc, [1.5, 2.0, 3.5, 1.5, 2.0])
    sigma = np.std([0.5, 0.0, 0.5])
    np.testing.assert_allclose(f.std, sigma * np.sqrt([1, 1, 1, 2, 2]))


def test_holt_winters_continues_a_clean_season():
    history = _seasonal(60)
    f = holt_winters(history, horizon=12, season=6)
    np.testing.assert_allclose(f.loc, _seasonal(72)[60:], atol=0.02)
    assert (f.std > 0).all()


def test_arima_on_seasonal_differences_integrates_back_past_one_season():
    # Level + season + noise: the seasonal differences are small noise, so ARIMA's forecast
    # is close to the last season, and steps past one season add the variances.
    history = _seasonal(120, noise=0.05)
    f = arima(history, horizon=12, season=6)
    np.testing.assert_allclose(f.loc, _seasonal(132)[120:], atol=0.15)
    assert (f.std[6:] > f.std[:6]).all()


def test_missing_statsmodels_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "statsmodels", None)  # import statsmodels -> ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'rnnkit\[forecast\]'"):
        holt_winters(_seasonal(30), horizon=3, season=6)
