import numpy as np
import pytest
import torch

from rnnkit.forecast.model import DeepAR, ForecastConfig


def _window(n=3, lags=(1, 2, 5), context=6, horizon=4, features=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    width = max(lags) + context + horizon
    values = 20 + torch.randn(n, width, generator=g)
    observed = (torch.rand(n, width, generator=g) > 0.2).float()
    feats = torch.randn(n, context + horizon, features, generator=g)
    return values, observed, feats, torch.arange(n) % 2


@pytest.mark.parametrize(
    ("cell", "scaling", "residual", "linear_lags"),
    [("lstm", "std", False, False), ("gru", "mean", True, False), ("gru", "std", False, True)],
)
def test_sampling_step_by_step_matches_the_teacher_forced_pass(
    cell, scaling, residual, linear_lags
):
    # Fed the true values instead of draws, the step-by-step forecast must see exactly the
    # distributions of the whole-window pass: the same lags, features, state and scale.
    torch.manual_seed(0)
    config = ForecastConfig(
        lags=[1, 2, 5], num_features=2, num_series=2, embedding_dim=3, cell=cell,
        hidden_size=8, num_layers=2, dropout=0.0, likelihood="student-t", scaling=scaling,
        residual=residual, linear_lags=linear_lags,
    )  # fmt: skip
    model = DeepAR(config).eval()
    if linear_lags:  # (it starts at zero, which would test nothing)
        torch.nn.init.normal_(model.linear.weight)
    values, observed, feats, series = _window()
    context, horizon, start = 6, 4, 5
    seen = []

    def truth(params):
        h = len(seen)
        seen.append(params)
        return values[:, start + context + h].unsqueeze(1)  # (N, 1) like a draw

    model.head.sample = truth
    model.sample_paths(
        values[:, : start + context], observed[:, : start + context], feats, series,
        context=context, horizon=horizon, num_samples=1,
    )  # fmt: skip
    observed_future = observed.clone()
    observed_future[:, start + context :] = 1.0  # draws count as observed
    with torch.no_grad():
        full = model(values, observed_future, feats, series, context)
    for h, params in enumerate(seen):
        for got, want in zip(params, full):
            torch.testing.assert_close(got[:, 0], want[:, context + h])


def test_scale_of_the_observed_context():
    model = DeepAR(ForecastConfig(lags=[2], scaling="std"))
    values = torch.tensor([[9.0, 9.0, 1.0, 2.0, 100.0, 3.0, 50.0]])
    observed = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0]])
    loc, scale = model.scale(values, observed, context=4)  # positions 2..5, the 100 is missing
    assert float(loc) == pytest.approx(2.0)
    assert float(scale) == pytest.approx(np.std([1.0, 2.0, 3.0]))
    model.config.scaling = "mean"
    loc, scale = model.scale(values, observed, context=4)
    assert float(loc) == 0.0 and float(scale) == pytest.approx(2.0)


def test_config_refuses_bad_choices():
    with pytest.raises(ValueError, match="likelihood"):
        ForecastConfig(likelihood="poisson")
    with pytest.raises(ValueError, match="negbin likelihood needs scaling='mean'"):
        ForecastConfig(likelihood="negbin", scaling="std")
    with pytest.raises(ValueError, match="lags"):
        ForecastConfig(lags=[0, 1])


def test_free_running_loss_fed_the_truth_is_the_teacher_forced_loss():
    torch.manual_seed(0)
    config = ForecastConfig(lags=[1, 2, 5], num_features=2, hidden_size=8, dropout=0.0)
    model = DeepAR(config)
    values, observed, feats, series = _window()
    mask = observed[:, 5:]
    state = {"h": 0}

    def truth(params):
        state["h"] += 1
        return values[:, 5 + 6 + state["h"] - 1].unsqueeze(1)

    model.head.sample = truth
    seen = observed.clone()
    seen[:, 11:] = 1.0  # draws count as observed, in both passes
    expected = model.nll(values, seen, mask, feats, series, 6)
    got = model.nll_free_running(values, seen, mask, feats, series, 6)
    torch.testing.assert_close(got[0], expected[0])
    assert float(got[1]) == float(mask.sum())
    got[0].backward()  # the draws are cut from the graph, the states are not
    assert model.head.proj.weight.grad is not None


def test_linear_lags_alone_forecast_the_seasonal_trend_rule_exactly():
    # With the network's own output at zero, the location is loc + scale * (w . scaled lags);
    # weights +1 on lags 1 and 24 and -1 on lag 25 sum to 1, so loc and scale cancel and the
    # location is z[t-1] + z[t-24] - z[t-25] (what ARIMA on seasonal differences extrapolates).
    config = ForecastConfig(lags=[1, 24, 25], num_features=0, hidden_size=4, linear_lags=True)
    model = DeepAR(config).eval()
    torch.nn.init.zeros_(model.head.proj.weight)
    torch.nn.init.zeros_(model.head.proj.bias)
    with torch.no_grad():
        model.linear.weight.copy_(torch.tensor([[1.0, 1.0, -1.0]]))
    g = torch.Generator().manual_seed(1)
    values = 40 + 3 * torch.randn(2, 25 + 30, generator=g)
    observed = torch.ones_like(values)
    with torch.no_grad():
        mu = model(values, observed, torch.zeros(2, 30, 0), torch.zeros(2, dtype=torch.long), 20)[0]
    t = torch.arange(25, 55)
    torch.testing.assert_close(mu, values[:, t - 1] + values[:, t - 24] - values[:, t - 25])


@pytest.mark.parametrize("likelihood", ["gaussian", "student-t"])
def test_spread_scales_each_draw_about_its_location(likelihood):
    # The same generator state gives the same standardised draws, so a one-step forecast with
    # spread 2 lies exactly twice as far from the location as with spread 1.
    config = ForecastConfig(lags=[1, 2, 5], num_features=2, num_series=2, embedding_dim=3,
                            hidden_size=8, likelihood=likelihood)  # fmt: skip
    model = DeepAR(config).eval()
    values, observed, feats, series = _window(horizon=1)
    given = dict(context=6, horizon=1, num_samples=50)
    draws = {}
    for spread in (1.0, 2.0):
        torch.manual_seed(3)
        draws[spread] = model.sample_paths(
            values[:, :11], observed[:, :11], feats, series, spread=spread, **given
        )
    with torch.no_grad():
        mu = model(values, observed, feats, series, 6)[0][:, 6, None, None]  # (N, 1, 1)
    torch.testing.assert_close(draws[2.0] - mu, 2 * (draws[1.0] - mu), rtol=1e-4, atol=1e-4)
    assert float((draws[1.0] - mu).abs().mean()) > 0.01
    with pytest.raises(ValueError, match="negbin head has no spread"):
        DeepAR(ForecastConfig(likelihood="negbin")).head.widen((torch.ones(1), torch.ones(1)), 2)
