import torch

from rnnkit.forecast.likelihoods import Gaussian, NegativeBinomial, StudentT


def _params(head, raw, loc, scale):
    return head.params(tuple(raw.unbind(-1)), loc, scale)


def test_log_probs_match_torch_distributions():
    torch.manual_seed(0)
    raw = torch.randn(4, 5, 3, dtype=torch.float64)
    loc = torch.randn(4, 1, dtype=torch.float64)
    scale = torch.rand(4, 1, dtype=torch.float64) * 5 + 0.1
    y = torch.randn(4, 5, dtype=torch.float64) * 3
    for head in (Gaussian(8), StudentT(8)):
        params = _params(head, raw[..., : head.num_params], loc, scale)
        expected = head.distribution(params).log_prob(y)
        torch.testing.assert_close(head.log_prob(params, y), expected)
    counts = torch.randint(0, 30, (4, 5)).double()
    head = NegativeBinomial(8)
    params = _params(head, raw[..., :2], torch.zeros_like(loc), scale)
    torch.testing.assert_close(
        head.log_prob(params, counts), head.distribution(params).log_prob(counts)
    )


def test_location_and_spread_follow_loc_and_scale():
    raw = (torch.tensor([[0.5]]), torch.tensor([[0.0]]), torch.tensor([[1.0]]))
    loc, scale = torch.tensor([[10.0]]), torch.tensor([[4.0]])
    mu, sigma, nu = StudentT(2).params(raw, loc, scale)
    assert float(mu) == 10.0 + 0.5 * 4.0
    assert abs(float(sigma) - 4.0 * float(torch.nn.functional.softplus(torch.tensor(0.0)))) < 1e-5
    assert float(nu) > 2.0  # a finite variance
    mean, alpha = NegativeBinomial(2).params(raw[:2], torch.zeros(1, 1), scale)
    assert float(mean) > 0 and float(alpha) > 0


def test_samples_follow_the_distribution():
    torch.manual_seed(1)
    head = Gaussian(2)
    params = (torch.full((20000,), 3.0), torch.full((20000,), 2.0))
    draws = head.sample(params)
    assert abs(float(draws.mean()) - 3.0) < 0.05
    assert abs(float(draws.std()) - 2.0) < 0.05
