"""DeepAR-style global autoregressive forecaster (Salinas et al. 2020) on rnnkit.nn LSTM/GRU.

One network for all series. Window layout, for a forecast made at position ``c`` of a window::

    values  |<-- max_lag -->|<---- context ---->|<-- horizon -->|
                            ^ first RNN step     ^ c: first forecast step

At each RNN step ``t`` the input is the lagged values ``z[t - l] / scale`` for every lag ``l``
(lag 1 is the previous value), whether ``z[t - 1]`` was observed, the known features at ``t``
(calendar, covariates), ``log(scale)`` and a learnt series embedding; the output is a
distribution over ``z[t]`` (:mod:`.likelihoods`). With ``scaling="mean"`` (DeepAR's per-series
mean scaling) ``scale`` is the mean absolute observed value of the context and ``loc`` is 0;
with ``scaling="std"`` the values are standardised by the context's mean and standard deviation
(the network then reads ``(z - loc) / scale``), which suits series whose swings are small next to
their level. Either way one network serves series of any level. With ``residual`` the head's
location is ``z[t-1] + scale * a`` instead of ``loc + scale * a``: the network predicts the
change, which a smooth series needs to a fraction of its swings.
Training scores every step of context and horizon with the true values fed in (teacher
forcing); forecasting feeds its own samples back in over the horizon.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.errors import ConfigError
from rnnkit.forecast.likelihoods import LIKELIHOODS
from rnnkit.forecast.recipe import ForecastRecipe
from rnnkit.nn import GRU, LSTM

CELLS = {"lstm": LSTM, "gru": GRU}
_MIN_SCALE = 1e-8


@dataclass
class ForecastConfig:
    """Shape of a :class:`DeepAR` model; stored in the run's ``config.json``."""

    lags: list[int] = field(default_factory=lambda: [1])  # lagged values fed at each step
    num_features: int = 0  # known inputs per step (calendar features, then covariates)
    num_series: int = 1  # series the embedding knows
    embedding_dim: int = 0  # series embedding size (0: none)
    cell: str = ForecastRecipe.cell  # "lstm" or "gru"
    hidden_size: int = ForecastRecipe.hidden_size  # recurrent state size
    num_layers: int = ForecastRecipe.num_layers  # stacked recurrent layers
    dropout: float = ForecastRecipe.dropout  # between recurrent layers
    likelihood: str = ForecastRecipe.likelihood  # "gaussian", "student-t" or "negbin"
    scaling: str = "mean"  # "mean" (z / mean|z|, DeepAR) or "std" ((z - mean) / std)
    residual: bool = ForecastRecipe.residual  # the location is relative to the value z[t-1]
    linear_lags: bool = False  # a linear map of the lags added to the location (off: older runs)
    impl: str = ForecastRecipe.impl  # rnnkit.nn kernels: "rnnkit", "torch" or "auto"

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ConfigError(f"cell must be one of {', '.join(CELLS)}, got {self.cell!r}")
        if self.likelihood not in LIKELIHOODS:
            raise ConfigError(
                f"likelihood must be one of {', '.join(LIKELIHOODS)}, got {self.likelihood!r}"
            )
        if self.scaling not in ("mean", "std"):
            raise ConfigError(f"scaling must be 'mean' or 'std', got {self.scaling!r}")
        if self.likelihood == "negbin" and (
            self.scaling != "mean" or self.residual or self.linear_lags
        ):
            raise ConfigError(
                "the negbin likelihood needs scaling='mean', residual=False and "
                "linear_lags=False (counts are only scaled, not shifted)"
            )
        if not self.lags or min(self.lags) < 1:
            raise ConfigError(f"lags must be positive step counts, got {self.lags}")

    @property
    def max_lag(self) -> int:
        return max(self.lags)

    @property
    def input_size(self) -> int:
        return len(self.lags) + 1 + self.num_features + 1 + self.embedding_dim

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ForecastConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class DeepAR(nn.Module):
    """The forecaster: inputs as in the module docstring, a recurrent layer, a likelihood head.

    Inputs (every method): ``values`` (N, W) the window's values, missing ones filled in;
    ``observed`` (N, W) 1.0 where a value was observed; ``features`` (N, T, F) the known inputs
    of the T = W - max_lag RNN steps; ``series`` (N,) series indices.
    """

    def __init__(self, config: ForecastConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.rnn = CELLS[c.cell](
            c.input_size, c.hidden_size, c.num_layers, batch_first=True,
            dropout=c.dropout if c.num_layers > 1 else 0.0, impl=c.impl,
        )  # fmt: skip
        self.head = LIKELIHOODS[c.likelihood](c.hidden_size)
        self.embedding = nn.Embedding(c.num_series, c.embedding_dim) if c.embedding_dim else None
        self.register_buffer("lags", torch.tensor(c.lags, dtype=torch.long), persistent=False)
        # LSTNet's highway (Lai et al. 2018): a linear autoregression on the scaled lags added to
        # the location, so an exact linear rule such as z[t-24] + z[t-1] - z[t-25] is one
        # weight vector away. Starts at zero: the network alone, until training moves it.
        self.linear = nn.Linear(len(c.lags), 1, bias=False) if c.linear_lags else None
        if self.linear is not None:
            nn.init.zeros_(self.linear.weight)

    def scale(self, values: Tensor, observed: Tensor, context: int) -> tuple[Tensor, Tensor]:
        """(N, 1) ``loc`` and ``scale`` of the observed values of the ``context`` steps before
        the forecast (see the module docstring)."""
        start = self.config.max_lag
        v, o = values[:, start : start + context], observed[:, start : start + context]
        count = o.sum(1, keepdim=True).clamp(min=1)
        if self.config.scaling == "mean":
            loc = torch.zeros_like(count)
            scale = (v.abs() * o).sum(1, keepdim=True) / count
        else:
            loc = (v * o).sum(1, keepdim=True) / count
            scale = (((v - loc) ** 2 * o).sum(1, keepdim=True) / count).sqrt()
        return loc, scale.clamp(min=_MIN_SCALE)

    def lagged(self, values: Tensor, loc: Tensor, scale: Tensor, steps: Tensor) -> Tensor:
        """(N, len(steps), L) the lagged values of window positions ``steps``, scaled."""
        back = steps[:, None] - self.lags[None, :]  # (S, L) positions of the lagged values
        return (values[:, back] - loc[:, :, None]) / scale[:, :, None]

    def inputs(
        self, values: Tensor, observed: Tensor, features: Tensor, series: Tensor,
        loc: Tensor, scale: Tensor, steps: Tensor,
    ) -> Tensor:  # fmt: skip
        """(N, len(steps), input_size) RNN inputs of window positions ``steps`` (max_lag <= t)."""
        lagged = self.lagged(values, loc, scale, steps)
        seen = observed[:, steps - 1].unsqueeze(-1)  # (N, S, 1)
        log_scale = torch.log(scale)[:, :, None].expand(-1, len(steps), 1)
        parts = [lagged, seen, features, log_scale]
        if self.embedding is not None:
            parts.append(self.embedding(series)[:, None, :].expand(-1, len(steps), -1))
        return torch.cat(parts, dim=-1)

    def forward(
        self, values: Tensor, observed: Tensor, features: Tensor, series: Tensor, context: int
    ) -> tuple[Tensor, ...]:
        """Teacher-forced distributions of every value after the lags: params, each (N, T)."""
        loc, scale = self.scale(values, observed, context)
        steps = torch.arange(self.config.max_lag, values.shape[1], device=values.device)
        x = self.inputs(values, observed, features, series, loc, scale, steps)
        hidden, _ = self.rnn(x)
        return self.head(hidden, self.base(values, steps, loc, scale), scale)

    def base(self, values: Tensor, steps: Tensor, loc: Tensor, scale: Tensor) -> Tensor:
        """Where the head's location is measured from: ``loc`` (N, 1), or with ``residual`` the
        previous value of each step (N, len(steps)), so the network predicts the change; with
        ``linear_lags`` plus ``scale`` times the linear autoregression (N, len(steps))."""
        base = values[:, steps - 1] if self.config.residual else loc
        if self.linear is not None:
            ar = self.linear(self.lagged(values, loc, scale, steps)).squeeze(-1)  # (N, S)
            base = base + scale * ar
        return base

    def nll(
        self, values: Tensor, observed: Tensor, target_mask: Tensor, features: Tensor,
        series: Tensor, context: int,
    ) -> tuple[Tensor, Tensor]:  # fmt: skip
        """Summed negative log-likelihood of the values where ``target_mask`` (N, T) is 1, and
        how many there are."""
        params = self(values, observed, features, series, context)
        y = values[:, self.config.max_lag :]
        log_p = self.head.log_prob(params, y)
        return -(log_p * target_mask).sum(), target_mask.sum()

    def nll_free_running(
        self, values: Tensor, observed: Tensor, target_mask: Tensor, features: Tensor,
        series: Tensor, context: int,
    ) -> tuple[Tensor, Tensor]:  # fmt: skip
        """As :meth:`nll`, but the horizon is scored the way it is forecast: after the context,
        each step reads the model's own draws (cut from the graph) instead of the true values,
        so the spread it learns for step h is that of an h-step forecast."""
        start = self.config.max_lag
        loc, scale = self.scale(values, observed, context)
        steps = torch.arange(start, start + context, device=values.device)
        x = self.inputs(values, observed, features[:, :context], series, loc, scale, steps)
        hidden, state = self.rnn(x)
        y = values[:, start:]
        log_p = [
            self.head.log_prob(
                self.head(hidden, self.base(values, steps, loc, scale), scale), y[:, :context]
            )
        ]
        drawn, seen = values.clone(), observed.clone()
        for h in range(values.shape[1] - start - context):
            t = torch.tensor([start + context + h], device=values.device)
            x = self.inputs(
                drawn, seen, features[:, context + h : context + h + 1], series, loc, scale, t
            )
            out, state = self.rnn(x, state)
            params = self.head(out, self.base(drawn, t, loc, scale), scale)
            log_p.append(self.head.log_prob(params, y[:, context + h : context + h + 1]))
            with torch.no_grad():
                drawn[:, t] = self.head.sample(params).to(drawn.dtype)
                seen[:, t] = 1.0
        return -(torch.cat(log_p, dim=1) * target_mask).sum(), target_mask.sum()

    @torch.no_grad()
    def sample_paths(
        self, values: Tensor, observed: Tensor, features: Tensor, series: Tensor, *,
        context: int, horizon: int, num_samples: int, spread: float = 1.0,
    ) -> Tensor:  # fmt: skip
        """(N, num_samples, horizon) sample paths after the ``max_lag + context`` given values.

        ``values``/``observed`` hold the lags and the context (N, max_lag + context); ``features``
        the known inputs of the context and the horizon (N, context + horizon, F). Each step's
        draw comes from the head's distribution with its spread times ``spread`` (1: as
        trained; see ``rnnkit.forecast.api.calibrate``). Draws use torch's global generator.
        """
        n, start = values.shape[0], self.config.max_lag
        loc, scale = self.scale(values, observed, context)
        steps = torch.arange(start, start + context, device=values.device)
        x = self.inputs(values, observed, features[:, :context], series, loc, scale, steps)
        _, state = self.rnn(x)
        # Every path continues the same context: repeat each row num_samples times.
        rep = lambda t: t.repeat_interleave(num_samples, dim=0)  # noqa: E731
        rep_state = lambda s: s.repeat_interleave(num_samples, dim=1)  # noqa: E731  # (L, N, H)
        state = tuple(map(rep_state, state)) if isinstance(state, tuple) else rep_state(state)
        tail = values.new_zeros(n * num_samples, horizon)
        paths_v = torch.cat([rep(values), tail], dim=1)  # (N*S, max_lag + context + horizon)
        paths_o = torch.cat([rep(observed), torch.ones_like(tail)], dim=1)
        feats, ser, lc, sc = rep(features[:, context:]), rep(series), rep(loc), rep(scale)
        for h in range(horizon):
            t = torch.tensor([start + context + h], device=values.device)
            x = self.inputs(paths_v, paths_o, feats[:, h : h + 1], ser, lc, sc, t)
            out, state = self.rnn(x, state)
            params = self.head(out, self.base(paths_v, t, lc, sc), sc)
            paths_v[:, t] = self.head.sample(self.head.widen(params, spread)).to(paths_v.dtype)
        return paths_v[:, start + context :].reshape(n, num_samples, horizon)
