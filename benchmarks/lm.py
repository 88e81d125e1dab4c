"""Language-model quality in a fixed time: the default recipe on the default corpus.

Trains ``rnnkit.lm.LMRecipe()`` (the recipe ``rnnkit lm train`` and ``rnnkit demo`` use) on
the Shakespeare corpus for ``--minutes`` of wall-clock time (evaluation included), then prints
the validation loss in nats per character (the target: <= 1.45 within 10 minutes on 2 CPU
cores), the training throughput, and a generated sample. ``--threads auto`` (the default) first
times a few training steps with 1 and with 2 torch threads and trains with the faster.

``--compare`` also trains, for the same time and in the same process, the plain baseline the
target was set against (2x256 LSTM through torch.nn's fused kernel, constant learning rate
2e-3, no warm-up), and prints both side by side with their ratio. ``--cells mingru,minlstm``
also trains the default recipe with each of those layers instead, for the same time.

    python benchmarks/lm.py --minutes 10               # the measurement (about 11 minutes)
    python benchmarks/lm.py --minutes 10 --compare     # plus the baseline (about 22 minutes)
    python benchmarks/lm.py --minutes 10 --cells mingru,minlstm   # plus MinGRU and MinLSTM
    python benchmarks/lm.py --minutes 0.5              # a quick check that everything runs
    python benchmarks/lm.py --minutes 10 --awd --seeds 0,1,2   # AWD-LSTM vs a plain LSTM, words

``--cell lstm``, ``--layer-norm`` and ``--eval-every`` change the trained recipe itself (one run
per process, so that two variants can train at once), and ``--curves PNG RUN...`` draws the
validation loss against steps of finished runs and says at which step each first reached the
first run's best validation loss (its final one, unless it overfits):

    python benchmarks/lm.py --minutes 10 --cpu-time --threads 1 --cell lstm --out runs/lstm
    python benchmarks/lm.py --minutes 10 --cpu-time --threads 1 --cell lstm --layer-norm \
        --out runs/lstm-ln
    python benchmarks/lm.py --curves curves.png runs/lstm/default runs/lstm-ln/default

``--awd`` instead compares, at word level on the same corpus and for the same time per run, the
``awd-lstm`` recipe with a plain LSTM language model of the same size (3 layers, 400 units,
200-dimensional tied embeddings, bptt 35, 20 streams) trained the default recipe's way (AdamW
3e-3, cosine, no dropout or regularisers), for each of ``--seeds``; it prints validation and
test perplexities side by side and draws both validation curves into ``awd_vs_plain.png``.
``--awd-short`` trains :func:`short_awd` (AdamW, lighter regularisers) as the AWD model, and
``--awd-models awd`` or ``plain`` trains only one of the two, so that both can run at once:

    python benchmarks/lm.py --awd --awd-short --awd-models awd --minutes 3 --cpu-time --threads 1

``--awd-variant adamw`` trains :func:`adamw_awd` instead (the recipe's own regularisers, the
plain model's optimizer), and ``--train-tokens N`` trains both models on the first N words of
the training split (validation and test unchanged). Why: the regularisers prevent overfitting,
and a model only overfits after passes over its training text. A training step of this shape
costs about 1.1 ms of one core per word with the whole split's 31k-word vocabulary (913 words
per CPU-second, ``benchmarks/lm_shapes.py``; none of the shapes measured reaches 2 passes), so 10
CPU-minutes are under half a pass over its 1.22 M words, and there both models tie. On the
first 100,000 words (a 7,815-word vocabulary) they are 8 to 9 passes: the plain model
overfits after about two, which is what AWD-LSTM is for (docs/cells.md, "Where AWD-LSTM pays";
at 200,000 words and 3.5 minutes the plain model had only begun to):

    python benchmarks/lm.py --awd --awd-variant adamw --train-tokens 100000 --eval-every 100 \
        --minutes 10 --cpu-time --threads 1 --seeds 0,1 --awd-models awd --out runs/awd100k

and the same with ``--awd-models plain``, as a second process. At the issue's budget, 2 cores
for 10 minutes, that is ``--minutes 20 --cpu-time --threads 2``; run it with
``OMP_WAIT_POLICY=PASSIVE`` on a shared machine, or threads waiting for a descheduled partner
spin and are charged CPU time (measured: the same first 50 steps, the same losses, cost 45.8
CPU-seconds instead of 18.9; benchmarks/results/awd_100k_2threads/).
``--valid-only`` skips the test split (probes) and ``--set FIELD=VALUE ...`` changes fields of
the default recipe (``--set schedule=constant ema=0.995``), or with ``--awd`` of the AWD model's
recipe, e.g. the NT-ASGD probe of docs/cells.md:

    python benchmarks/lm.py --awd --awd-variant sgd --awd-models awd --train-tokens 100000 \
        --eval-every 100 --minutes 4 --cpu-time --threads 1 --valid-only --set lr=7.5

``--plain-set FIELD=VALUE ...`` does the same for the plain model (``--plain-set
warmup_steps=500``: the seed-0 run of docs/language-models.md, "A saturated LSTM").

``--max-vocab N`` keeps both models' vocabularies to the N most frequent training words (the
rest read as ``<unk>``): with 10,000 a pass over the whole training split costs 2.5x less, so a
longer budget reaches several passes over all of it (docs/cells.md, "The whole split, several
passes"):

    OMP_WAIT_POLICY=PASSIVE python benchmarks/lm.py --awd --max-vocab 10000 --eval-every 500 \
        --minutes 90 --cpu-time --threads 1 --seeds 0 --awd-models awd --awd-variant sgd \
        --out runs/whole10k/sgd      # and --awd-variant adamw, and --awd-models plain

Run it on a quiet machine: other processes on the same cores lower the tokens/s and, through
them, the quality reached in the time. The script prints the load average before and after.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from rnnkit import lm
from rnnkit.lm import LMRecipe, get_recipe
from rnnkit.lm.recipe import ADAMW
from rnnkit.plots import plot_series
from rnnkit.training.config import DEVICES, Runtime
from rnnkit.training.distributed import pick_device

TARGET = 1.45  # nats/char on the validation split within 10 minutes on 2 cores


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(runtime: Runtime) -> str:
    """The device ``runtime`` trains on, as the trainer picks it, with the GPU's name."""
    device = pick_device(runtime.device)
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def steps_per_second(recipe: LMRecipe, threads: int, steps: int = 8) -> float:
    """Training steps per second of the recipe's model with ``threads`` torch threads."""
    from rnnkit.lm.model import LMConfig, RNNLanguageModel

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = RNNLanguageModel(LMConfig.from_recipe(recipe, 80))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    tokens = torch.randint(0, 80, (recipe.bptt + 1, recipe.batch_size))

    def step():
        loss, _ = model.loss(tokens[:-1], tokens[1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - start)


def choose_threads(recipe: LMRecipe, most: int) -> int:
    """The thread count (1..most) that trains fastest here and now. Small recurrent steps gain
    little from a second thread, and lose a lot when another process wants the core."""
    rates = {n: steps_per_second(recipe, n) for n in range(1, most + 1)}
    print("threads calibration (steps/s): " + ", ".join(f"{n}: {r:.2f}" for n, r in rates.items()))
    return max(rates, key=rates.get)


def train_and_measure(
    name: str,
    recipe: LMRecipe,
    out: Path,
    quiet: bool,
    cpu_time: bool = False,
    test: bool = True,
    runtime: Runtime | None = None,
) -> dict:
    print(f"\n== {name}: training for {recipe.max_minutes:g} min into {out}", flush=True)
    start = time.monotonic()
    clock = time.process_time if cpu_time else time.monotonic
    result = lm.train(out, recipe=recipe, quiet=quiet, clock=clock, runtime=runtime,
                      report=lambda m: print("  " + m, flush=True))  # fmt: skip
    wall = time.monotonic() - start
    valid = lm.evaluate(out, split="valid", runtime=runtime)
    test = lm.evaluate(out, split="test", runtime=runtime) if test else {"loss": math.nan}
    return {
        "name": name,
        "steps": result.steps,
        "epochs": result.epochs_done,
        "tokens_per_s": result.tokens_per_s,
        "train_loss": result.train_loss,
        "valid": valid["loss"],
        "test": test["loss"],
        "wall_min": wall / 60,
        "out": out,
    }


def plain_like(awd: LMRecipe) -> LMRecipe:
    """A plain LSTM LM of ``awd``'s size and data, trained the default recipe's way."""
    shape = {name: getattr(awd, name) for name in (
        "level", "cell", "num_layers", "hidden_size", "embedding_dim", "tie_weights", "bptt",
        "batch_size", "max_minutes", "eval_every", "seed", "data", "train_tokens", "max_vocab",
    )}  # fmt: skip
    return dataclasses.replace(LMRecipe(), **shape)


def valid_records(out: Path, split: str = "valid") -> list[dict]:
    """The validation (or ``split``) records of a run's metrics, in order."""
    import json

    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if r["split"] == split]


def valid_curve(out: Path) -> tuple[list[float], list[float]]:
    """(minutes, validation perplexity) of a run's metrics."""
    valid = valid_records(out)
    return [r["elapsed_s"] / 60 for r in valid], [math.exp(r["loss"]) for r in valid]


def steps_curves(png: str, runs: list[str], train: bool = False, by_time: bool = False) -> None:
    """``--curves``: validation loss against steps of finished runs, drawn into ``png``, and the
    first step at which each run reached the first run's best validation loss; with ``train``
    (``--train-curves``) also each run's training loss (with its dropout, if any) as logged;
    with ``by_time`` (``--curves-by-time``) against the budget's minutes instead (CPU minutes
    for ``--cpu-time`` runs), for models whose steps cost different times."""
    curves, trains, minutes = {}, {}, {}
    parents = [Path(run).parent.name or run for run in runs]
    for run, parent in zip(runs, parents):
        # runs are named by their folder's parent, or parent/run where parents repeat (seeds)
        name = parent if parents.count(parent) == 1 else f"{parent}/{Path(run).name}"
        valid = valid_records(Path(run))
        curves[name] = ([r["step"] for r in valid], [r["loss"] for r in valid])
        minutes[name] = [r["elapsed_s"] / 60 for r in valid]
        logged = valid_records(Path(run), "train")
        xs = [r["elapsed_s"] / 60 if by_time else r["step"] for r in logged]
        trains[f"{name} (train)"] = (xs, [r["loss"] for r in logged])
    names = list(curves)
    goal = min(curves[names[0]][1])
    print(f"{'run':<20} {'steps':>6} {'final valid':>11} {'best valid':>10} "
          f"{'first step <= ' + f'{goal:.4f}':>22} {'at minute':>9}")  # fmt: skip
    for name, (steps, losses) in curves.items():
        reached = next((i for i, v in enumerate(losses) if v <= goal), None)
        step, minute = ("never", "-") if reached is None else (
            steps[reached], f"{minutes[name][reached]:.1f}")  # fmt: skip
        print(f"{name:<20} {steps[-1]:>6} {losses[-1]:>11.4f} {min(losses):>10.4f} "
              f"{step:>22} {minute:>9}")  # fmt: skip
    if by_time:
        curves = {name: (minutes[name], losses) for name, (_, losses) in curves.items()}
    last = max(xs[-1] for xs, _ in curves.values())
    curves[f"{names[0]}'s best loss"] = ([0, last], [goal, goal])
    if train:
        curves.update(trains)
    axis = "minutes of the budget" if by_time else "steps"
    title = ("validation and training" if train else "validation") + f" loss against {axis}"
    xlabel = "training minutes (the budget's clock)" if by_time else "optimizer steps"
    plot_series(curves, png, xlabel=xlabel, ylabel="loss (nats/token)", title=title)
    print(f"curves: {png}")


def short_awd(awd: LMRecipe) -> LMRecipe:
    """AWD-LSTM for a budget of minutes: the plain model's optimizer (AdamW 3e-3, cosine decay,
    clip 1), which learns much faster in the first hundreds of steps than SGD at lr 30, and the
    same regularisers at lower rates (a short run underfits more than it overfits)."""
    return dataclasses.replace(
        awd, optimizer="adamw", lr=3e-3, schedule="cosine", warmup_steps=50, clip_norm=1.0,
        weight_decay=0.0, dropout=0.1, input_dropout=0.1, hidden_dropout=0.1,
        embedding_dropout=0.0, weight_drop=0.1, ar=1.0, tar=0.5,
    )  # fmt: skip


def adamw_awd(awd: LMRecipe) -> LMRecipe:
    """The AWD recipe's own regularisers (its dropouts, embedding dropout, weight drop, AR/TAR,
    variable windows) with the plain model's optimizer (AdamW 3e-3, cosine decay, clip 1): for a
    budget of several passes over a small training text, where the plain model overfits."""
    return dataclasses.replace(awd, **ADAMW)


AWD_VARIANTS = {"sgd": lambda awd: awd, "short": short_awd, "adamw": adamw_awd}


def overrides(pairs: list[str]) -> dict:
    """``--set lr=10 nonmono=2``: recipe fields and values (parsed as the fields' types)."""
    fields = {f.name: f for f in dataclasses.fields(LMRecipe)}
    changes = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key not in fields or not value:
            raise SystemExit(f"--set: expected FIELD=VALUE with an LMRecipe field, got {pair!r}")
        default = getattr(LMRecipe(), key)
        kind = type(default) if default is not None else float
        changes[key] = value.lower() in ("1", "true") if kind is bool else kind(value)
    return changes


def compare_awd(args: argparse.Namespace, folder: Path) -> None:
    """The ``--awd`` comparison (see the module docstring)."""
    rows, curves = [], {}
    for seed in [int(s) for s in args.seeds.split(",")]:
        awd = dataclasses.replace(get_recipe("awd-lstm"), max_minutes=args.minutes, seed=seed,
                                  train_tokens=args.train_tokens,
                                  max_vocab=args.max_vocab)  # fmt: skip
        if args.eval_every:
            awd = dataclasses.replace(awd, eval_every=args.eval_every)
        variant = "short" if args.awd_short else args.awd_variant
        models = {"awd": ("awd-lstm", AWD_VARIANTS[variant](awd)),
                  "plain": ("plain lstm", plain_like(awd))}  # fmt: skip
        for key in args.awd_models.split(","):
            name, recipe = models[key]
            out = folder / f"{name.replace(' ', '-')}-{seed}"
            sets = args.set if key == "awd" else args.plain_set
            recipe = dataclasses.replace(recipe, **overrides(sets))
            row = train_and_measure(f"{name} s{seed}", recipe, out, args.quiet, args.cpu_time,
                                    test=not args.valid_only, runtime=args.runtime)  # fmt: skip
            rows.append(row)
            curves[row["name"]] = valid_curve(out)
    print(f"\nload average after: {load()}")
    print(f"\n{'model':<16} {'steps':>6} {'epochs':>6} {'tokens/s':>9} {'valid ppl':>10} "
          f"{'test ppl':>9} {'wall min':>8}")  # fmt: skip
    for r in rows:
        print(f"{r['name']:<16} {r['steps']:>6} {r['epochs']:>6.2f} {r['tokens_per_s']:>9.0f} "
              f"{math.exp(r['valid']):>10.1f} {math.exp(r['test']):>9.1f} "
              f"{r['wall_min']:>8.1f}")  # fmt: skip
    mean = {}
    for name in ("awd-lstm", "plain lstm"):
        losses = [r["valid"] for r in rows if r["name"].startswith(name)]
        if losses:
            mean[name] = sum(losses) / len(losses)
    if len(mean) == 2:
        ratio = math.exp(mean["awd-lstm"]) / math.exp(mean["plain lstm"])
        print(f"\nmean valid perplexity: awd-lstm {math.exp(mean['awd-lstm']):.1f}, plain "
              f"{math.exp(mean['plain lstm']):.1f}; awd/plain = {ratio:.3f} "
              "(target <= 0.90)")  # fmt: skip
    plot_series(curves, folder / "awd_vs_plain.png", xlabel="minutes",
                ylabel="validation perplexity (words)", title="AWD-LSTM vs plain LSTM")  # fmt: skip
    print(f"curves: {folder / 'awd_vs_plain.png'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training time per model")
    parser.add_argument(
        "--threads", default="auto",
        help="torch threads, or 'auto': time 1 and 2 threads briefly and use the faster",
    )  # fmt: skip
    parser.add_argument("--compare", action="store_true", help="also train the plain baseline")
    parser.add_argument(
        "--cells", default="",
        help="also train the default recipe with these layers instead (e.g. mingru,minlstm)",
    )  # fmt: skip
    parser.add_argument(
        "--awd", action="store_true", help="compare awd-lstm with a plain LSTM (word level)"
    )
    parser.add_argument("--cell", help="the recipe's recurrent layer (default: the recipe's)")
    parser.add_argument("--layer-norm", action="store_true", help="the recipe with layer_norm")
    parser.add_argument("--eval-every", type=int, help="validate every N steps (default: the "
                        "recipe's)")  # fmt: skip
    parser.add_argument(
        "--curves", nargs="+", metavar=("PNG", "RUN"),
        help="plot validation loss against steps of finished runs, then stop",
    )  # fmt: skip
    parser.add_argument("--train-curves", action="store_true",
                        help="--curves: also draw the runs' training loss")  # fmt: skip
    parser.add_argument("--curves-by-time", action="store_true",
                        help="--curves: against the budget's minutes, not steps")  # fmt: skip
    parser.add_argument("--seeds", default="0", help="--awd: comma-separated seeds")
    parser.add_argument("--awd-short", action="store_true",
                        help="--awd: the AWD recipe for short budgets (AdamW, lighter "
                        "regularisers; see short_awd)")  # fmt: skip
    parser.add_argument("--awd-variant", choices=sorted(AWD_VARIANTS), default="sgd",
                        help="--awd: the AWD model: the recipe as it is (sgd: NT-ASGD), "
                        "short_awd (short) or adamw_awd (adamw)")  # fmt: skip
    parser.add_argument("--train-tokens", type=int,
                        help="--awd: train both models on the first N words of the training "
                        "split only (default: all)")  # fmt: skip
    parser.add_argument("--max-vocab", type=int,
                        help="--awd: both models keep the N most frequent training words, the "
                        "rest read as <unk> (default: all)")  # fmt: skip
    parser.add_argument("--awd-models", default="awd,plain",
                        help="--awd: which of awd,plain to train (default: both; one per "
                        "process lets two train at once)")  # fmt: skip
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="change these LMRecipe fields of the default recipe (with "
                        "--awd: of the AWD model) (probes)")  # fmt: skip
    parser.add_argument("--plain-set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="--awd: change these LMRecipe fields of the plain model (e.g. "
                        "warmup_steps=500)")  # fmt: skip
    parser.add_argument("--valid-only", action="store_true",
                        help="do not evaluate test (exploration, where nothing may be chosen "
                        "on test)")  # fmt: skip
    parser.add_argument("--out", help="folder for the run directories (default: a temp folder)")
    parser.add_argument("--length", type=int, default=600, help="characters to generate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="where to train and evaluate (default: auto, a GPU if there is "
                        "one; the Python API's own default is the CPU)")  # fmt: skip
    parser.add_argument(
        "--cpu-time", action="store_true",
        help="count --minutes in CPU seconds of this process (fair on a busy machine)",
    )  # fmt: skip
    args = parser.parse_args()
    args.runtime = Runtime(device=args.device)
    if not set(args.awd_models.split(",")) <= {"awd", "plain"}:
        parser.error(f"--awd-models takes awd and/or plain, got {args.awd_models}")
    if args.curves:
        if len(args.curves) < 2:
            parser.error("--curves takes a PNG path and at least one run directory")
        steps_curves(args.curves[0], args.curves[1:], args.train_curves, args.curves_by_time)
        return

    folder = Path(args.out or tempfile.mkdtemp(prefix="rnnkit-bench-lm-"))
    folder.mkdir(parents=True, exist_ok=True)
    recipe = dataclasses.replace(LMRecipe(), max_minutes=args.minutes, seed=args.seed)
    changes = {"cell": args.cell, "eval_every": args.eval_every,
               "layer_norm": True if args.layer_norm else None}  # fmt: skip
    recipe = dataclasses.replace(recipe, **{k: v for k, v in changes.items() if v is not None})
    if not args.awd:  # --set changes the default recipe here (the AWD model's with --awd)
        recipe = dataclasses.replace(recipe, **overrides(args.set))
    print("rnnkit benchmark: language model, " + ("awd-lstm vs plain LSTM" if args.awd else
          "default recipe") + ", default corpus")  # fmt: skip
    threads = choose_threads(recipe, 2) if args.threads == "auto" else int(args.threads)
    torch.set_num_threads(threads)
    print(f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; python {platform.python_version()}; device "
          f"{device_name(args.runtime)}")  # fmt: skip
    print(f"load average before: {load()}")
    if args.awd:
        compare_awd(args, folder)
        return
    print(f"recipe: {dataclasses.asdict(recipe)}")

    rows = [train_and_measure("default recipe", recipe, folder / "default", args.quiet,
                              args.cpu_time, test=not args.valid_only,
                              runtime=args.runtime)]  # fmt: skip
    if args.compare:
        baseline = dataclasses.replace(
            recipe, num_layers=2, hidden_size=256, embedding_dim=64, lr=2e-3,
            schedule="constant", warmup_steps=0, impl="torch",
        )  # fmt: skip
        rows.append(
            train_and_measure(
                "baseline 2x256 torch",
                baseline,
                folder / "baseline",
                args.quiet,
                args.cpu_time,
                runtime=args.runtime,
            )  # fmt: skip
        )
    for cell in filter(None, args.cells.split(",")):
        variant = dataclasses.replace(recipe, cell=cell)
        rows.append(train_and_measure(f"default, {cell}", variant, folder / cell, args.quiet,
                                      args.cpu_time, runtime=args.runtime))  # fmt: skip
    print(f"\nload average after: {load()}")

    print(f"\n{'model':<22} {'steps':>6} {'epochs':>6} {'tokens/s':>9} {'valid nats/char':>15} "
          f"{'bits/char':>9} {'test nats/char':>14} {'wall min':>8}")  # fmt: skip
    for r in rows:
        print(f"{r['name']:<22} {r['steps']:>6} {r['epochs']:>6.2f} {r['tokens_per_s']:>9.0f} "
              f"{r['valid']:>15.4f} {r['valid'] / math.log(2):>9.4f} {r['test']:>14.4f} "
              f"{r['wall_min']:>8.1f}")  # fmt: skip
    if args.compare:
        a, b = rows[:2]
        speed, quality = a["tokens_per_s"] / b["tokens_per_s"], a["valid"] / b["valid"]
        print(f"{'ratio default/baseline':<22} {'':>6} {'':>6} {speed:>9.2f} {quality:>15.3f}")
    best = rows[0]["valid"]
    verdict = "meets" if best <= TARGET else "misses"
    print(f"\ndefault recipe: {best:.4f} nats/char on validation after {args.minutes:g} min "
          f"({verdict} the target <= {TARGET} for 10 min on 2 cores)")  # fmt: skip

    print(f"\n--- sample: {args.length} characters, temperature 0.8, seed {args.seed} ---")
    model = lm.load(rows[0]["out"])
    lm.generate(model, "\n", length=args.length, temperature=0.8, seed=args.seed,
                on_text=lambda t: (sys.stdout.write(t), sys.stdout.flush()))  # fmt: skip
    print("\n---")


if __name__ == "__main__":
    main()
