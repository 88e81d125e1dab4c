import math

import numpy as np
import properscoring
import pytest

from rnnkit.forecast.metrics import (
    GaussianForecast,
    SampleForecast,
    Scores,
    crps_gaussian,
    crps_samples,
    seasonal_error,
)


def test_sample_crps_matches_properscoring():
    rng = np.random.default_rng(0)
    samples = rng.normal(size=(50, 7)) * 3 + 1
    y = rng.normal(size=7)
    expected = properscoring.crps_ensemble(y, samples.T)
    np.testing.assert_allclose(crps_samples(samples, y), expected, rtol=1e-12, atol=1e-12)


def test_sample_crps_is_the_integral_of_the_squared_cdf_gap():
    # CRPS = integral of (F(x) - 1{x >= y})^2 dx, F the empirical CDF of the samples.
    samples = np.array([[0.3], [-1.0], [2.5], [0.9]])
    y = np.array([0.5])
    xs = np.linspace(-4, 6, 200001)
    cdf = (samples[:, 0][None, :] <= xs[:, None]).mean(axis=1)
    integral = np.trapezoid((cdf - (xs >= y[0])) ** 2, xs)
    assert crps_samples(samples, y)[0] == pytest.approx(integral, abs=1e-4)


def test_gaussian_crps_matches_closed_form_and_properscoring():
    loc, std, y = np.array([0.0, 2.0]), np.array([1.0, 0.5]), np.array([0.0, 3.0])
    # At the mean of a standard normal: (sqrt(2) - 1) / sqrt(pi).
    assert crps_gaussian(loc, std, y)[0] == pytest.approx((math.sqrt(2) - 1) / math.sqrt(math.pi))
    expected = properscoring.crps_gaussian(y, mu=loc, sig=std)
    np.testing.assert_allclose(crps_gaussian(loc, std, y), expected, rtol=1e-10)


def test_many_gaussian_samples_approach_the_closed_form():
    rng = np.random.default_rng(1)
    samples = rng.normal(2.0, 1.5, size=(20000, 1))
    exact = crps_gaussian(np.array([2.0]), np.array([1.5]), np.array([3.1]))
    assert crps_samples(samples, np.array([3.1]))[0] == pytest.approx(exact[0], rel=0.02)


def test_seasonal_error_of_a_periodic_series_with_a_step():
    history = np.tile([1.0, 2.0, 3.0], 4)
    assert seasonal_error(history, 3) == 0.0
    history[-1] = 5.0  # one seasonal difference of 2 among 9
    assert seasonal_error(history, 3) == pytest.approx(2 / 9)
    history[4] = np.nan  # pairs with a missing value are left out
    assert seasonal_error(history, 3) == pytest.approx(2 / 7)


def test_scores_of_a_known_forecast():
    scores = Scores(horizon=2)
    forecast = GaussianForecast(np.array([1.0, 2.0]), np.array([1.0, 1.0]))
    scores.add(forecast, np.array([2.0, np.nan]), scale=0.5)  # the missing step is ignored
    scores.add(forecast, np.array([1.0, 5.0]), scale=1.0)
    s = scores.summary()
    assert s["mae"] == pytest.approx((1 + 0 + 3) / 3)
    assert s["rmse"] == pytest.approx(math.sqrt((1 + 0 + 9) / 3))
    assert s["mase"] == pytest.approx((1 / 0.5 + 1.5 / 1.0) / 2)
    assert s["smape"] == pytest.approx((200 / 3 + 0 + 200 * 3 / 7) / 3)
    # 80% interval of N(mu, 1) is mu +- 1.2816: in, in, out.
    assert s["coverage_80"] == pytest.approx(2 / 3)
    assert s["coverage_95"] == pytest.approx(2 / 3)
    assert scores.per_step("mae") == pytest.approx([0.5, 3.0])


def test_sample_forecast_quantiles_and_mean():
    samples = np.arange(101, dtype=float)[:, None] * np.array([[1.0, 2.0]])
    f = SampleForecast(samples)
    np.testing.assert_allclose(f.quantile(0.5), [50.0, 100.0])
    np.testing.assert_allclose(f.quantile(0.1), [10.0, 20.0])
    np.testing.assert_allclose(f.mean(), [50.0, 100.0])
