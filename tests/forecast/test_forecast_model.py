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
    ("cell", "scaling", "residual"), [("lstm", "std", False), ("gru", "mean", True)]
)
def test_sampling_step_by_step_matches_the_teacher_forced_pass(cell, scaling, residual):
    # Fed the true values instead of draws, the step-by-step forecast must see exactly the
    # distributions of the whole-window pass: the same lags, features, state and scale.
    torch.manual_seed(0)
    config = ForecastConfig(
        lags=[1, 2, 5], num_features=2, num_series=2, embedding_dim=3, cell=cell,
        hidden_size=8, num_layers=2, dropout=0.0, likelihood="student-t", scaling=scaling,
        residual=residual,
    )  # fmt: skip
    model = DeepAR(config).eval()
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
