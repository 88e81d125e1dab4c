"""Which spread should a refit forecast with? Rules scored on the real validation period.

Reads the kept runs of ``forecast_refit_check.py --out DIR`` (per seed: the first stage, trained
to the pseudo-validation period and calibrated there, and its refit ``refit-anneal``, trained to
the real validation period) and scores the refit's paths on the real validation period (which
neither saw) widened by the factors of each rule:

- ``first stage``: the first stage's factors per step (chosen on the pseudo-validation period
  for its own paths; the rule until now);
- ``as trained``: 1 at every step;
- ``refit in-sample``: chosen for the refit's own paths on the pseudo-validation period, which
  it trained on;
- ``transfer``: the refit's in-sample factors times the first stage's out-of-sample /
  in-sample ratio (its factors on the pseudo-validation period over those on the same length of
  its own training just before it);
- ``recent K``: the first stage's factors times one scalar per origin, the one with the lowest
  CRPS over the forecasts from the K midnights before it (their horizons end by the origin, so
  only values before it are used);
- ``recent K coverage``: the same scalar chosen by the coverage of those forecasts instead
  (the smallest ``|cov80 - 0.8| + |cov95 - 0.95|``; ties: the lower CRPS);
- ``track K``: the first stage's factors times one scalar per origin, the one an
  adaptive-conformal controller of rate G reaches over the forecasts from the K origins one
  horizon before it, oldest first (``--track K:G``; ``ForecastRecipe(adapt_spread=K,
  adapt_rate=G)``, :func:`rnnkit.forecast.calibration.tracked_scale`);
- ``holdout D``: the factors a "holdout refit" chooses for its own paths on the last D days
  before the scored period, out of sample for it: it trains like the refit (same seed, steps
  and schedule) on the windows that end D days earlier (``refit-holdoutD``, trained here when
  absent, ``--holdout-days``);
- ``holdout D model``: the holdout refit itself forecasting, with those factors.

Scored at every midnight (the backtest's 36 origins) and at every hour (853 origins) of the
real validation period: CRPS and the coverage of the 80% and 95% intervals. Several DIRs are
several replicas (``forecast_refit_check.py --score-from``); the rule is chosen over them all
(:func:`choose`), and with ``--fresh DIR`` also per seed, the replica DIR deciding on its own too
(:func:`choose_per_seed`); with ``--rule4`` the tracking rules are decided as
``forecast_spread_rule4.txt`` says (:func:`choose_tracking`). ``--holdout-days 0`` leaves out
the holdout rules (no holdout refit is trained) and ``--no-in-sample`` the refit in-sample and
transfer rules, so only the paths of the scored period and the K horizons before it are drawn.

    python benchmarks/forecast_spread_check.py bench/refit_check
    python benchmarks/forecast_spread_check.py bench/replica_oct bench/replica_jul --jobs 2
    python benchmarks/forecast_spread_check.py bench/replica_oct bench/replica_jul \\
        bench/replica_may --reuse --holdout-days 0 --no-in-sample --fresh bench/replica_may
    python benchmarks/forecast_spread_check.py bench/replica_oct bench/replica_jul \\
        bench/replica_may --holdout-days 0 --no-in-sample --no-first-stage-rows \\
        --track 14:0.2,28:0.1 --rule4 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from rnnkit.forecast import load
from rnnkit.forecast.api import Forecaster, _prepare, _sample, _truth
from rnnkit.forecast.api import refit as train_refit
from rnnkit.forecast.calibration import (
    crps_by_factor,
    fit_step_spread,
    tracked_scale,
    widen_paths,
)
from rnnkit.forecast.metrics import SampleForecast, Scores

SCALES = np.exp(np.linspace(np.log(0.25), np.log(4.0), 49))  # the per-origin scalar's choices


def paths_at(fc: Forecaster, picks: list[tuple[int, int]], seed: int):
    """The paths as trained (N, S, H) of ``fc`` from the (series, origin) ``picks`` and the
    true values (N, H)."""
    series, windows = _prepare(fc, None, fc.recipe.horizon)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        paths = _sample(fc, windows, picks, num_samples=fc.recipe.num_samples, spread=1.0)
    truth = np.stack([_truth(series, i, o, fc.recipe.horizon) for i, o in picks])
    return paths, truth


def score(paths: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """CRPS and the coverage of the 80% and 95% intervals of ``paths`` (N, S, H) against
    ``truth`` (N, H), as the backtest scores them."""
    scores = Scores(paths.shape[2])
    for p, t in zip(paths, truth):
        scores.add(SampleForecast(p), t, 1.0)
    summary = scores.summary()
    return {
        "crps": summary["crps"],
        "cov80": summary["coverage_80"],
        "cov95": summary["coverage_95"],
    }


def crps_per_origin(paths: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(N, len(SCALES)): each origin's mean CRPS over its steps after its ``paths`` (N, S, H)
    are widened about their median by each of SCALES."""
    rows = [crps_by_factor(p[None], t[None], SCALES) for p, t in zip(paths, truth)]
    return np.stack([np.nanmean(r, axis=1) for r in rows])


def coverage_per_origin(paths: np.ndarray, truth: np.ndarray) -> dict[float, np.ndarray]:
    """{level: (N, len(SCALES), 2)}: per origin and scalar of SCALES, the count of its steps
    inside the central interval of ``paths`` (N, S, H) widened about their median by the
    scalar, and the count of observed steps (quantiles move with the widening, as the
    backtest's do)."""
    median = np.median(paths, axis=1)
    seen = ~np.isnan(truth)
    out = {}
    for level in (0.8, 0.95):
        lo = np.quantile(paths, (1 - level) / 2, axis=1) - median  # (N, H)
        hi = np.quantile(paths, (1 + level) / 2, axis=1) - median
        gap = np.where(seen, truth - median, np.inf)[:, None, :]  # (N, 1, H)
        s = SCALES[None, :, None]
        inside = ((gap >= s * lo[:, None, :]) & (gap <= s * hi[:, None, :])).sum(axis=2)
        out[level] = np.stack([inside, np.broadcast_to(seen.sum(axis=1)[:, None], inside.shape)], 2)
    return out


def recent_coverage_scale(
    per_origin: np.ndarray, inside: dict, k: int, gap: int, first: int
) -> np.ndarray:
    """For each origin n >= first: the scalar of SCALES whose 80% and 95% intervals over the
    forecasts from origins n - gap, ..., n - k * gap covered nearest nominal
    (``|cov80 - 0.8| + |cov95 - 0.95|``; ties: the lower CRPS summed over them)."""
    out = []
    for n in range(first, len(per_origin)):
        back = [n - j * gap for j in range(1, k + 1)]
        distance = 0.0
        for level, counts in inside.items():
            c = counts[back].sum(axis=0)  # (len(SCALES), 2)
            distance = distance + np.abs(c[:, 0] / np.maximum(c[:, 1], 1) - level)
        crps = per_origin[back].sum(axis=0)
        best = np.flatnonzero(distance <= distance.min() + 1e-12)
        out.append(SCALES[best[np.argmin(crps[best])]])
    return np.array(out)


def recent_scale(per_origin: np.ndarray, k: int, gap: int, first: int) -> np.ndarray:
    """For each origin n >= first: the scalar of SCALES with the lowest CRPS summed over the
    origins n - gap, ..., n - k * gap (one horizon apart, so their horizons end by origin n)."""
    out = []
    for n in range(first, len(per_origin)):
        back = [n - j * gap for j in range(1, k + 1)]
        out.append(SCALES[int(np.argmin(per_origin[back].sum(axis=0)))])
    return np.array(out)


def holdout_refit(run: Path, days: int, threads: int) -> tuple[Path, float]:
    """The seed's holdout refit (trained into ``run/refit-holdoutD`` when absent, on CPU time)
    and the CPU seconds its training took (0 when it was there)."""
    torch.set_num_threads(threads)
    name = f"refit-holdout{days}"
    if (run / name / "model.safetensors").is_file():
        return run / name, 0.0
    first = load(run, first_stage=True)
    steps = days * 86400 // first.config["data"]["step_s"]
    started = time.process_time()
    train_refit(run, holdout=steps, into=name, clock=time.process_time)
    return run / name, time.process_time() - started


def check_seed(
    run: Path, seed: int, ks: list[int], cover_ks: list[int], days: int, threads: int = 1,
    no_refit_rows: bool = True, in_sample: bool = True, track: tuple = (),
) -> dict:  # fmt: skip
    """Score every rule on the kept runs of one seed (the record of ``spread-seedK.json``);
    ``days`` 0: no holdout rules, ``in_sample`` False: no refit in-sample or transfer rule;
    ``track``: (K, G) of each tracking rule."""
    torch.set_num_threads(threads)
    first = load(run, first_stage=True)
    refit = load(run / "refit-anneal")
    series, windows = _prepare(first, None, first.recipe.horizon)
    pseudo, valid = series.cuts()  # the truncated data: validation = pseudo, test = real valid
    end = series.length
    h = first.recipe.horizon
    c_first = np.asarray(first.spread)
    rules = {"first stage": c_first, "as trained": np.ones(h)}
    record = {"seed": seed, "holdout_cpu_s": 0.0}
    factors = {}
    if in_sample:
        # in-sample calibrations: the refit on the pseudo-validation period (it trained on it),
        # the first stage on as many steps of its own training just before it
        p, t = paths_at(refit, windows.origins(pseudo, valid, stride=1), seed)
        c_refit_in, _ = fit_step_spread(p, t)
        p, t = paths_at(first, windows.origins(pseudo - (valid - pseudo), pseudo, stride=1), seed)
        c_first_in, _ = fit_step_spread(p, t)
        rules["refit in-sample"] = c_refit_in
        rules["transfer"] = c_refit_in * c_first / c_first_in
        factors["first stage in-sample"] = c_first_in
    if days:
        hold_dir, record["holdout_cpu_s"] = holdout_refit(run, days, threads)
        hold = load(hold_dir)
        # the holdout refit's factors on its last `days` days, which it did not train on
        record["holdout_steps"] = back = days * 86400 // series.step
        p, t = paths_at(hold, windows.origins(valid - back, valid, stride=1), seed)
        c_hold, _ = fit_step_spread(p, t)
        rules[f"holdout {days}"] = c_hold
    record["factors"] = {
        k: [round(float(x), 3) for x in v] for k, v in {**rules, **factors}.items()
    }
    # every hour of the real validation period, and the K days before it (the recent-K rule)
    kmax = max(ks + cover_ks + [k for k, _, _ in track])
    picks = windows.origins(valid - kmax * h, end, stride=1)
    p, t = paths_at(refit, picks, seed)
    skip = kmax * h  # the scored origins start here
    assert series.epoch_s(picks[skip][1]) % 86400 == 0  # hourly data, midnight
    widened = widen_paths(p, c_first)
    per_origin = crps_per_origin(widened, t)
    scales = {f"recent {k}": recent_scale(per_origin, k, h, skip) for k in ks}
    inside = coverage_per_origin(widened, t)
    for k in cover_ks:
        scales[f"recent {k} coverage"] = recent_coverage_scale(per_origin, inside, k, h, skip)
    for k, rate, unseen in track:
        # unseen: only the origins from the scored period's start, which the refit did not
        # train on (ForecastRecipe.adapt_unseen); no such origin: the scalar is 1
        first_ok = skip if unseen else 0
        chains = [[n - j * h for j in range(k, 0, -1) if n - j * h >= first_ok]
                  for n in range(skip, len(picks))]  # fmt: skip
        scales[f"track {k}" + (" unseen" if unseen else "")] = np.array(
            [tracked_scale(widened[c], t[c], rate) if c else 1.0 for c in chains]
        )
    if days:
        ph, th = paths_at(hold, picks, seed)  # the holdout refit forecasting itself
    for name, stride in (("midnights", h), ("hourly", 1)):
        rows = np.arange(skip, len(picks), stride)
        record[name] = {"origins": len(rows)}
        for rule, c in rules.items():
            record[name][rule] = score(widen_paths(p[rows], c), t[rows])
        for rule, g in scales.items():
            chosen = g[rows - skip]
            scored = np.stack([widen_paths(p[r], c_first * x) for r, x in zip(rows, chosen)])
            record[name][rule] = {
                **score(scored, t[rows]),
                "scale_mean": float(np.mean(chosen)),
            }
        if days:
            record[name][f"holdout {days} model"] = score(widen_paths(ph[rows], c_hold), th[rows])
    if not no_refit_rows:
        return record
    # the first stage (no refit) beside it: its own factors, and with the recent-K scalar
    p, t = paths_at(first, picks, seed)
    per_origin = crps_per_origin(widen_paths(p, c_first), t)
    for name, stride in (("midnights", h), ("hourly", 1)):
        rows = np.arange(skip, len(picks), stride)
        record[name]["no refit: first stage"] = score(widen_paths(p[rows], c_first), t[rows])
        for k in ks:
            g = recent_scale(per_origin, k, h, skip)[rows - skip]
            scored = np.stack([widen_paths(p[r], c_first * x) for r, x in zip(rows, g)])
            record[name][f"no refit: recent {k}"] = score(scored, t[rows])
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="+", help="the --out of forecast_refit_check.py (replicas)")
    parser.add_argument("--recent", default="7,14", help="K of the recent-K rule")
    parser.add_argument("--recent-coverage", default="14", help="K of the recent-K coverage rule")
    parser.add_argument(
        "--holdout-days", type=int, default=14, help="D of the holdout rules (0: leave them out)"
    )
    parser.add_argument(
        "--no-in-sample", action="store_true",
        help="leave out the refit in-sample and transfer rules (saves sampling)",
    )  # fmt: skip
    parser.add_argument(
        "--fresh", metavar="DIR",
        help="one of the DIRs: also choose per seed (forecast_spread_rule3.txt), DIR deciding too",
    )  # fmt: skip
    parser.add_argument(
        "--track", default="", metavar="K:G,...",
        help="tracking rules: K earlier forecasts, rate G (forecast_spread_rule4.txt)",
    )  # fmt: skip
    parser.add_argument(
        "--unseen", action="store_true",
        help="each tracking rule also with its chain restricted to the scored period "
        "(forecast_spread_rule5.txt)",
    )  # fmt: skip
    parser.add_argument(
        "--rule5", action="store_true",
        help="decide the unseen tracking rule as forecast_spread_rule5.txt says",
    )  # fmt: skip
    parser.add_argument(
        "--rule4", action="store_true",
        help="decide the tracking rules as forecast_spread_rule4.txt says",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=1, help="seeds scored side by side")
    parser.add_argument(
        "--reuse", action="store_true", help="take the seeds' spread-seedK.json kept in DIR"
    )
    parser.add_argument(
        "--no-first-stage-rows", action="store_true",
        help="leave out the rows of the first stage without a refit (saves sampling)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.fresh is not None and Path(args.fresh) not in map(Path, args.out):
        parser.error(f"--fresh {args.fresh}: not one of the DIRs")
    torch.set_num_threads(args.threads)
    ks = [int(k) for k in args.recent.split(",") if k]
    cover_ks = [int(k) for k in args.recent_coverage.split(",") if k]
    pairs = [(int(k), float(g)) for k, g in (x.split(":") for x in args.track.split(",") if x)]
    track = tuple((k, g, False) for k, g in pairs)  # (K, G, unseen)
    track += tuple((k, g, True) for k, g in pairs) if args.unseen else ()
    work = []
    for out in map(Path, args.out):
        for run in sorted(out.glob("seed*")):
            if run.is_dir():
                work.append((run, int(run.name[4:])))
    kept = {w: w[0].parent / f"spread-seed{w[1]}.json" for w in work}
    todo = [w for w in work if not (args.reuse and kept[w].is_file())]
    rows = (not args.no_first_stage_rows, not args.no_in_sample)
    jobs = [
        (run, seed, ks, cover_ks, args.holdout_days, args.threads, *rows, track)
        for run, seed in todo
    ]
    if args.jobs > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
            fresh = dict(zip(todo, pool.map(check_seed, *zip(*jobs))))
    else:
        fresh = {w: check_seed(*j) for w, j in zip(todo, jobs)}
    done = [fresh[w] if w in fresh else json.loads(kept[w].read_text()) for w in work]
    replicas: dict[str, list[dict]] = {}
    for (run, seed), rec in zip(work, done):
        kept[run, seed].write_text(json.dumps(rec, indent=1))
        replicas.setdefault(str(Path(run.parent)), []).append(rec)
        print(
            f"{run}: holdout refit {rec['holdout_cpu_s']:.0f} CPU s; " + json.dumps(rec["factors"]),
            flush=True,
        )
    for out, records in replicas.items():
        for name in ("midnights", "hourly"):
            print(
                f"\n{out}: {name} of the scored period ({records[0][name]['origins']} origins), "
                f"{len(records)} seed(s): mean (per seed)"
            )
            print(f"{'rule':22}{'CRPS':>28}{'cov. 80%':>24}{'cov. 95%':>24}")
            for rule in records[0][name]:
                if rule == "origins":
                    continue
                cells = []
                for m in ("crps", "cov80", "cov95"):
                    v = [r[name][rule][m] for r in records]
                    cells.append(f"{statistics.mean(v):.4f} ({', '.join(f'{x:.4f}' for x in v)})")
                print(f"{rule:22}" + "".join(f"{c:>26}" for c in cells))
    if args.rule4:
        print("\nthe tracking rules per seed (hourly; forecast_spread_rule4.txt, choose_tracking):")
        print(f"chosen: {choose_tracking(replicas, [f'track {k}' for k, _, u in track if not u])}")
    if args.rule5:
        print("\nthe unseen tracking rule (hourly; forecast_spread_rule5.txt, rule4's test first):")
        unseen = [f"track {k} unseen" for k, _, u in track if u]
        passed = choose_tracking(replicas, unseen)
        for rule in unseen:
            plain = rule.removesuffix(" unseen")
            base = replica_distance(replicas, plain, list(replicas))
            d = replica_distance(replicas, rule, list(replicas))
            ok = passed == rule and d <= base + 0.01
            print(f"  {rule}: D {d:.4f} against {plain}'s {base:.4f}; "
                  + ("adopted" if ok else "not adopted"))  # fmt: skip
    print("\nthe choice (hourly origins; see choose):")
    print(f"chosen: {choose(list(replicas.values()))}")
    if args.fresh is not None:
        print(f"\nthe choice per seed, {Path(args.fresh)} fresh (hourly; see choose_per_seed):")
        print(f"chosen: {choose_per_seed(replicas, str(Path(args.fresh)))}")
    return 0


def common_rules(replicas: list[list[dict]]) -> list[str]:
    """The rules scored on every replica (hourly origins), in the first replica's order."""
    rules = [r for r in replicas[0][0]["hourly"] if r != "origins" and not r.startswith("no refit")]
    return [r for r in rules if all(r in rec["hourly"] for rs in replicas for rec in rs)]


def choose(replicas: list[list[dict]]) -> str:
    """The rule chosen as written down before scoring (benchmarks/results/
    forecast_spread_rule2.txt): per replica, the distance of the mean coverage over its seeds
    from nominal (``|cov80 - 0.8| + |cov95 - 0.95|``, hourly origins) and the ratio of the mean
    CRPS to the first stage's; both averaged over the replicas. Rules whose CRPS ratio is above
    1.01 are out; the smallest distance wins, and within 0.01 of it the lower CRPS ratio."""

    def mean(records: list[dict], rule: str, m: str) -> float:
        return statistics.mean(r["hourly"][rule][m] for r in records)

    def distance(rule: str) -> float:
        return statistics.mean(
            abs(mean(rs, rule, "cov80") - 0.8) + abs(mean(rs, rule, "cov95") - 0.95)
            for rs in replicas
        )

    def ratio(rule: str) -> float:
        return statistics.mean(
            mean(rs, rule, "crps") / mean(rs, "first stage", "crps") for rs in replicas
        )

    rules = common_rules(replicas)
    allowed = [r for r in rules if ratio(r) <= 1.01]
    best = min(distance(r) for r in allowed)
    near = [r for r in allowed if distance(r) <= best + 0.01]
    for r in rules:
        per = ", ".join(
            f"{mean(rs, r, 'cov80'):.3f}/{mean(rs, r, 'cov95'):.3f}" for rs in replicas
        )  # fmt: skip
        kept = "" if r in allowed else "  excluded (CRPS)"
        print(f"  {r:20} CRPS ratio {ratio(r):.4f}  distance {distance(r):.3f}  ({per}){kept}")
    return min(near, key=ratio)


# the rules that may replace the first stage's factors (forecast_spread_rule3.txt)
CANDIDATES = ("recent 14 coverage", "recent 7", "recent 14")


def seed_distance(record: dict, rule: str) -> float:
    """``|cov80 - 0.8| + |cov95 - 0.95|`` of one seed's own coverage (hourly origins)."""
    scores = record["hourly"][rule]
    return abs(scores["cov80"] - 0.8) + abs(scores["cov95"] - 0.95)


def replica_distance(replicas: dict[str, list[dict]], rule: str, names: list[str]) -> float:
    """Each seed's own distance from nominal (:func:`seed_distance`), averaged over the seeds
    of the replicas ``names``."""
    return statistics.mean(seed_distance(r, rule) for n in names for r in replicas[n])


def crps_ratio(replicas: dict[str, list[dict]], rule: str) -> float:
    """The rule's mean CRPS over the seeds over the first stage's, averaged over the replicas
    (hourly origins)."""

    def crps(records: list[dict], name: str) -> float:
        return statistics.mean(r["hourly"][name]["crps"] for r in records)

    return statistics.mean(crps(rs, rule) / crps(rs, "first stage") for rs in replicas.values())


def choose_per_seed(
    replicas: dict[str, list[dict]], fresh: str, candidates: tuple[str, ...] = CANDIDATES
) -> str:
    """The rule chosen as written down before the third replica was trained (benchmarks/results/
    forecast_spread_rule3.txt): D, each seed's own distance from nominal averaged over the
    seeds and the replicas; D of the ``fresh`` replica alone; the CRPS ratio to the first stage
    as in :func:`choose`. A candidate replaces the first stage only if its ratio is at most
    1.01, its D at least 0.01 below the first stage's and its fresh D below the first stage's
    too; of several, the smallest D (then the lower ratio)."""

    distance = partial(replica_distance, replicas)
    ratio = partial(crps_ratio, replicas)

    names = list(replicas)
    rules = common_rules(list(replicas.values()))
    base, base_fresh = distance("first stage", names), distance("first stage", [fresh])
    qualified = []
    for rule in rules:
        d, d_fresh = distance(rule, names), distance(rule, [fresh])
        per = "; ".join(
            ", ".join(f"{seed_distance(r, rule):.3f}" for r in replicas[n]) for n in names
        )  # fmt: skip
        verdict = ""
        if rule in candidates:
            ok = ratio(rule) <= 1.01 and d <= base - 0.01 and d_fresh < base_fresh
            verdict = "  qualifies" if ok else "  does not qualify"
            if ok:
                qualified.append(rule)
        print(
            f"  {rule:20} CRPS ratio {ratio(rule):.4f}  D {d:.4f}  fresh D {d_fresh:.4f}  "
            f"(per seed {per}){verdict}"
        )
    if not qualified:
        return "first stage"
    return min(qualified, key=lambda r: (distance(r, names), ratio(r)))


def choose_tracking(replicas: dict[str, list[dict]], candidates: list[str]) -> str:
    """The decision written down before the tracking rules were scored or their replicas trained
    (benchmarks/results/forecast_spread_rule4.txt): D, each seed's own distance from nominal
    averaged over the seeds and the replicas, D_r over one replica's seeds, the CRPS ratio to
    the first stage as in :func:`choose_per_seed`. A candidate replaces the first stage only if
    its ratio is at most 1.01, its D at least 0.01 below the first stage's, and its D_r below
    the first stage's on at least 2 of the 3 replicas; of several, the smallest D (then the
    lower ratio)."""

    distance = partial(replica_distance, replicas)
    ratio = partial(crps_ratio, replicas)

    names = list(replicas)
    base = distance("first stage", names)
    qualified = []
    for rule in ["first stage", *candidates]:
        d = distance(rule, names)
        per = [distance(rule, [n]) for n in names]
        wins = sum(distance(rule, [n]) < distance("first stage", [n]) for n in names)
        verdict = ""
        if rule != "first stage":
            ok = ratio(rule) <= 1.01 and d <= base - 0.01 and wins >= 2
            verdict = f"  wins on {wins} replica(s); " + ("qualifies" if ok else "does not qualify")
            if ok:
                qualified.append(rule)
        print(
            f"  {rule:14} CRPS ratio {ratio(rule):.4f}  D {d:.4f}  D per replica "
            + ", ".join(f"{x:.4f}" for x in per)
            + verdict
        )
    if not qualified:
        return "first stage"
    return min(qualified, key=lambda r: (distance(r, names), ratio(r)))


if __name__ == "__main__":
    raise SystemExit(main())
