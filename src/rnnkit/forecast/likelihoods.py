"""Likelihood heads: a linear map from the recurrent state to a distribution over the next value.

Each head turns ``(N, T, hidden)`` states and a per-series ``scale`` into the parameters of its
distribution *in the data's own units* (DeepAR, Salinas et al. 2020, sec. 3.1 and 3.3): the
network works on ``(z - loc) / scale`` and the head maps its location and spread back
(for the negative binomial: ``mu = scale * softplus(.)``, ``alpha = softplus(.) / sqrt(scale)``).
So ``log_prob`` is the log-density of the raw value and the training loss is in nats per
observation of the data as given.

``log_prob`` is written out here (tests compare it with ``torch.distributions``); sampling uses
``torch.distributions`` and torch's global generator, which the caller seeds.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

_MIN_SCALE = 1e-6  # keeps the spread of a distribution away from zero


class LikelihoodHead(nn.Module):
    """Base: ``proj`` maps states to raw parameters; subclasses give them meaning."""

    num_params = 2

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.proj = nn.Linear(hidden_size, self.num_params)

    def forward(self, hidden: Tensor, loc: Tensor, scale: Tensor) -> tuple[Tensor, ...]:
        """Distribution parameters, each ``(N, T)``, from ``hidden`` (N, T, H) and the window's
        ``loc`` and ``scale`` (N, 1): the network's outputs are in units of ``scale`` from
        ``loc``."""
        # (N, T, P); float32 (or the model's float64) also under autocast: torch's samplers and
        # densities want it (no bf16 gamma draws for Student-t)
        raw = self.proj(hidden).to(self.proj.weight.dtype)
        return self.params(raw.unbind(-1), loc, scale)

    def params(self, raw: tuple[Tensor, ...], loc: Tensor, scale: Tensor) -> tuple[Tensor, ...]:
        raise NotImplementedError

    def log_prob(self, params: tuple[Tensor, ...], y: Tensor) -> Tensor:
        raise NotImplementedError

    def distribution(self, params: tuple[Tensor, ...]) -> torch.distributions.Distribution:
        raise NotImplementedError

    def sample(self, params: tuple[Tensor, ...]) -> Tensor:
        """One draw per parameter entry (torch's global generator)."""
        return self.distribution(params).sample()

    def widen(self, params: tuple[Tensor, ...], factor: float) -> tuple[Tensor, ...]:
        """The parameters with the spread multiplied by ``factor`` (location-scale heads: the
        scale, the second parameter; a head without one overrides this)."""
        return (params[0], params[1] * factor, *params[2:])

    def mean(self, params: tuple[Tensor, ...]) -> Tensor:
        """The mean of the distribution (the location for Student-t with few degrees)."""
        return params[0]


class Gaussian(LikelihoodHead):
    """Normal(mu, sigma): ``mu = loc + scale * a``, ``sigma = scale * softplus(b)``."""

    def params(self, raw: tuple[Tensor, ...], loc: Tensor, scale: Tensor) -> tuple[Tensor, ...]:
        return loc + raw[0] * scale, (F.softplus(raw[1]) + _MIN_SCALE) * scale

    def log_prob(self, params: tuple[Tensor, ...], y: Tensor) -> Tensor:
        mu, sigma = params
        z = (y - mu) / sigma
        return -0.5 * z * z - torch.log(sigma) - 0.5 * math.log(2 * math.pi)

    def distribution(self, params: tuple[Tensor, ...]) -> torch.distributions.Distribution:
        return torch.distributions.Normal(*params)


class StudentT(LikelihoodHead):
    """Student-t(nu, mu, sigma) with ``nu = 2 + softplus(c)`` (finite variance), heavy tails."""

    num_params = 3

    def params(self, raw: tuple[Tensor, ...], loc: Tensor, scale: Tensor) -> tuple[Tensor, ...]:
        nu = 2.0 + F.softplus(raw[2])
        return loc + raw[0] * scale, (F.softplus(raw[1]) + _MIN_SCALE) * scale, nu

    def log_prob(self, params: tuple[Tensor, ...], y: Tensor) -> Tensor:
        mu, sigma, nu = params
        z = (y - mu) / sigma
        return (
            torch.lgamma((nu + 1) / 2)
            - torch.lgamma(nu / 2)
            - 0.5 * torch.log(math.pi * nu)
            - torch.log(sigma)
            - (nu + 1) / 2 * torch.log1p(z * z / nu)
        )

    def distribution(self, params: tuple[Tensor, ...]) -> torch.distributions.Distribution:
        mu, sigma, nu = params
        return torch.distributions.StudentT(nu, mu, sigma)


class NegativeBinomial(LikelihoodHead):
    """Counts: mean ``mu``, shape ``alpha`` (variance ``mu + alpha mu^2``), DeepAR's eq. (3)."""

    def params(self, raw: tuple[Tensor, ...], loc: Tensor, scale: Tensor) -> tuple[Tensor, ...]:
        # Counts are only scaled (the model checks that ``loc`` is 0 for this head).
        mu = (F.softplus(raw[0]) + _MIN_SCALE) * scale
        alpha = (F.softplus(raw[1]) + _MIN_SCALE) / torch.sqrt(scale)
        return mu, alpha

    def log_prob(self, params: tuple[Tensor, ...], y: Tensor) -> Tensor:
        mu, alpha = params
        r = 1.0 / alpha
        return (
            torch.lgamma(y + r)
            - torch.lgamma(y + 1)
            - torch.lgamma(r)
            - r * torch.log1p(alpha * mu)
            + y * (torch.log(alpha * mu) - torch.log1p(alpha * mu))
        )

    def widen(self, params: tuple[Tensor, ...], factor: float) -> tuple[Tensor, ...]:
        if factor != 1.0:
            raise ValueError("the negbin head has no spread to widen; use spread 1")
        return params

    def distribution(self, params: tuple[Tensor, ...]) -> torch.distributions.Distribution:
        mu, alpha = params
        # torch's parameterisation: failures until total_count successes, success prob `probs`.
        return torch.distributions.NegativeBinomial(
            total_count=1.0 / alpha, probs=alpha * mu / (1 + alpha * mu)
        )


LIKELIHOODS: dict[str, type[LikelihoodHead]] = {
    "gaussian": Gaussian,
    "student-t": StudentT,
    "negbin": NegativeBinomial,
}
