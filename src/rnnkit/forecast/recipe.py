"""The default forecasting recipe: the one source of every ``rnnkit forecast train`` default.

Torch-free, so ``--help`` can show the defaults without importing torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from rnnkit.errors import ConfigError

# What the training loss is per: the trainer's progress line and the playground's curves say it.
LOSS_UNIT = "nats/value"

HOUR, DAY, WEEK = 3600, 86400, 7 * 86400


@dataclass
class ForecastRecipe:
    """Everything ``rnnkit forecast train`` decides: data, window, model and training.

    The defaults are DeepAR's for hourly data (2 x 40 recurrent layers, Student-t likelihood,
    168 hours of context) with AdamW at 3e-3 and a cosine decay over a 10-minute budget on 2 CPU
    cores; ``benchmarks/forecast.py`` measures them against classical baselines. Departures,
    each measured on the default data after 600 steps (backtest MAE, one seed): standardising
    each window (``scaling="std"``) instead of DeepAR's mean scaling (0.13 F against 1.32 F: the
    swings are a few degrees on a level of ~45 F); a GRU instead of an LSTM (0.093 F against
    0.130 F, and 1.6x the steps per second). ``lr`` 1e-3 reached 0.147 F, a Gaussian head 0.134 F
    (LSTM), ``residual`` 0.104 F (GRU; better NLL and coverage, worse MAE). ``linear_lags``
    (LSTNet's highway) gives the network the linear seasonal rules ARIMA uses, and
    ``calibrate`` widens the sample paths about their median by a factor per horizon step,
    each with the lowest CRPS over an origin at every validation step (about 1.2 to 1.55 on the
    default data; see :mod:`rnnkit.forecast.calibration` and docs/forecasting.md). ``refit``
    then trains anew on training + validation for the best checkpoint's steps, with a full
    decay (``refit_schedule="anneal"``), and ``patience`` ends the first stage 10 validations
    after its best: in a nested check on the validation period (the last 36 days of training
    held out to choose, the real validation period scored; 2 seeds) the refit's MAE was
    0.081 F against 0.122 F, its CRPS 0.058 against 0.091 (benchmarks/forecast_refit_check.py).
    The refit forecasts with the first stage's spread: of nine rules for it scored on two nested
    replicas (the paths as trained, factors chosen in-sample for the refit or out of sample for
    a refit held out 14 days, a transfer of the first stage's out-of-sample ratio, a factor from
    the last 7 or 14 days' forecasts by CRPS or by coverage), it was chosen by the rule written
    down before scoring (78%/93% on both; benchmarks/forecast_spread_check.py). On top of
    them each origin's paths are widened by one scalar that an adaptive-conformal controller
    (Gibbs & Candes 2021) reaches over the 14 forecasts one horizon before it (``adapt_spread``
    14, ``adapt_rate`` 0.2): on three nested replicas trained after the rule was written down
    (benchmarks/results/forecast_spread_rule4.txt), each seed's distance from nominal coverage
    averaged 0.034 against the fixed factors' 0.078, nearer on every replica, CRPS 0.1% lower.
    The scalar picked nearest nominal over those forecasts (``adapt_rate=0``) covered too
    little there (0.763/0.905 on one replica) and stays an option. Of those 14 forecasts only
    the ones the model did not train on count (``adapt_unseen``: conformal calibration needs
    held-out forecasts; rule5, the same replicas: D 0.031 against 0.034).
    """

    data: str = "seattle-temps"  # dataset name or CSV file
    encoding: str = "utf-8"  # of a CSV file (a byte-order mark decides over utf-8)
    freq: str | None = None  # grid step ("1h", "30min", "d"); None: the most common difference
    covariates: list[str] = field(default_factory=list)  # CSV columns known in advance
    time_column: str | None = None  # None: time/timestamp/date/datetime/ds, else the first
    id_column: str | None = None  # long layout's series column (None: series_id/series/id/...)
    target: str | None = None  # long layout's value column (None: value/y/target)
    horizon: int = 24  # steps forecast from each origin
    context: int = 168  # steps the network reads before the first forecast step
    lags: list[int] | None = None  # lagged values fed each step; None: from the step (default_lags)
    cell: str = "gru"  # recurrent layer: "lstm" or "gru"
    hidden_size: int = 40  # recurrent state size
    num_layers: int = 2  # stacked recurrent layers
    dropout: float = 0.1  # between recurrent layers
    likelihood: str = "student-t"  # output distribution: "gaussian", "student-t" or "negbin"
    scaling: str = "auto"  # "std" ((z - mean) / std), "mean" (DeepAR's z / mean|z|); auto: std,
    # but mean for negbin (counts are only scaled)
    residual: bool = False  # the location is relative to the previous value (not for negbin)
    linear_lags: bool = True  # add a linear autoregression on the lags to the location
    # (LSTNet's highway; never for negbin, whose counts are only scaled)
    embedding_dim: int = 8  # series embedding size (used when there are several series)
    impl: str = "auto"  # rnnkit.nn kernels: "rnnkit", "torch" (fused op) or "auto"
    free_running: bool = False  # train the horizon on the model's own draws, as it forecasts
    split: list[str] | None = None  # the first validation and first test time (ISO); None:
    # the first 80% of the grid train, the next 10% validate, the last 10% test
    batch_size: int = 64  # windows per step
    steps_per_epoch: int = 100  # optimizer steps between reshuffles of the window draws
    optimizer: str = "adamw"  # "adamw" or "sgd"
    lr: float = 3e-3  # peak learning rate
    weight_decay: float = 0.0  # decoupled weight decay
    schedule: str = "cosine"  # learning-rate decay over the budget
    warmup_steps: int = 50  # linear warm-up steps
    clip_norm: float = 10.0  # gradient-norm clipping
    ema: float = 0.0  # validate and keep a moving average of the weights (this decay; 0: off)
    epochs: int | None = None  # budget: epochs of steps_per_epoch steps
    max_steps: int | None = None  # budget: optimizer steps
    max_minutes: float | None = 10.0  # budget: wall-clock minutes (with refit: both stages)
    eval_every: int = 200  # validate (NLL of the validation horizons) and checkpoint every N steps
    patience: int | None = 10  # stop after N validations without a new best (None: never)
    refit: bool = True  # after training (and calibrating), train anew on training + validation
    # for as many steps as the best checkpoint had, into RUN/refit; forecasts use those weights
    refit_schedule: str = "anneal"  # the refit's learning rate: "same" (the first stage's, step
    # for step, stopping where its best checkpoint was) or "anneal" (a full decay over its steps)
    seed: int = 0  # random seed (weights, window draws)
    num_samples: int = 100  # sample paths per forecast (predict, backtest)
    calibrate: bool = True  # after training, choose the spread per step on validation CRPS
    adapt_spread: int = 14  # forecast with the spread times one scalar per origin, from the
    # coverage of the forecasts from the N origins one horizon apart before it (their values all
    # known by then); 0: off (the calibrated factors alone)
    adapt_rate: float = 0.2  # > 0: the scalar an adaptive-conformal controller of this rate
    # reaches over those forecasts, oldest first (tracked_scale); 0: the scalar whose 80%/95%
    # intervals covered them nearest nominal
    adapt_unseen: bool = True  # only forecasts the model did not train on count (after the
    # refit's training, else from the validation period); False: the N before, wherever they lie
    snapshots: int = 1  # forecast with the N validated checkpoints of lowest validation NLL,
    # their paths pooled (a snapshot ensemble; 1: the best alone)

    def __post_init__(self) -> None:
        for name in (
            "horizon", "context", "batch_size", "steps_per_epoch", "num_samples", "snapshots",
        ):  # fmt: skip
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.adapt_spread < 0:
            raise ConfigError(f"adapt_spread must be >= 0, got {self.adapt_spread}")
        if not 0 <= self.adapt_rate <= 1:
            raise ConfigError(f"adapt_rate must lie in [0, 1], got {self.adapt_rate}")
        if self.refit_schedule not in ("same", "anneal"):
            raise ConfigError(f"refit_schedule must be same or anneal, got {self.refit_schedule!r}")
        if self.refit and self.snapshots > 1:
            raise ConfigError(
                "refit trains one set of weights; with snapshots > 1 turn it off (--no-refit)"
            )

    def model_scaling(self) -> str:
        """The scaling the model uses: ``scaling``, with "auto" resolved."""
        if self.scaling != "auto":
            return self.scaling
        return "mean" if self.likelihood == "negbin" else "std"

    def model_linear_lags(self) -> bool:
        """Whether the model has the linear autoregression: ``linear_lags``, off for negbin."""
        return self.linear_lags and self.likelihood != "negbin"

    def train_config(self) -> Any:
        """The :class:`rnnkit.training.TrainConfig` of this recipe."""
        from rnnkit.training import TrainConfig

        names = {f.name for f in fields(TrainConfig)}
        values = {k: v for k, v in asdict(self).items() if k in names}
        # the refit's steps come out of the same budget: the first stage leaves time for them
        return TrainConfig(**values, reserve_refit=self.refit)


def default_lags(step: int) -> list[int]:
    """Lags for data of ``step`` seconds: the last few steps, and one and two seasons back
    (hourly also a week), in the spirit of GluonTS' lag sets."""
    if step == HOUR:
        return [1, 2, 3, 23, 24, 25, 48, 168]
    if step < DAY and DAY % step == 0:
        day = DAY // step
        return [1, 2, 3, day - 1, day, day + 1, 2 * day, 7 * day]
    if step == DAY:
        return [1, 2, 3, 7, 14, 28]
    if step == WEEK:
        return [1, 2, 3, 4, 52]
    return [1, 2, 3]
