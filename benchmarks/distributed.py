"""Data-parallel training: tokens/s with 1 and with N processes, and the communication share.

Trains, for ``--minutes`` per row, once in one process and once with ``--nproc N`` (torch's
elastic launcher, gloo on the CPU), each a real ``rnnkit`` command in its own process group:

- ``lm``: the default language-model recipe (``rnnkit lm train``: a 2x256 GRU, 32 streams of 100
  characters, the global batch) on a generated text;
- ``forecast``: the default forecasting recipe (``rnnkit forecast train``: DeepAR, a 2x40 GRU,
  64 windows of 168 + 24 hours, the global batch) on 8 generated hourly series;

and prints a side-by-side table per task: optimizer steps, tokens/s (forecast: observed values
per second; all ranks together), validation loss, and the ratio to one process. With a GPU it
adds a CUDA row (one process per GPU) and a bf16 row; without one it says so.

The communication share is measured apart, side by side in one torchrun launch: ms per step of
the same model with the gradients averaged through shared memory (the default for CPU ranks on
one machine), by DDP's all-reduce, and not at all; the share is ``1 - none / averaged``.

    python benchmarks/distributed.py --minutes 10            # the measurement (quiet machine)
    python benchmarks/distributed.py --minutes 0.5 --threads 1   # a quick check
    python benchmarks/distributed.py --tasks forecast --minutes 1

On 2 CPU cores that other work shares, 2 processes cannot be faster than one: each rank gets
half the cores it would have alone, and pays for the all-reduce on top.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = "the of and to a in that is was he for it with as his on be at by had not".split()


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def write_text(path: Path, characters: int = 400_000, seed: int = 0) -> Path:
    """A generated text: words of a small vocabulary in random order, with line breaks."""
    rng = random.Random(seed)
    parts, n = [], 0
    while n < characters:
        word = rng.choice(WORDS) + rng.choice(" " * 9 + "\n")
        parts.append(word)
        n += len(word)
    path.write_text("".join(parts), encoding="utf-8")
    return path


def write_series(path: Path, series: int = 8, steps: int = 4000, seed: int = 0) -> Path:
    """A wide CSV of hourly series: daily and weekly cycles of different levels, and noise."""
    rng = random.Random(seed)
    levels = [rng.uniform(5, 50) for _ in range(series)]
    lines = ["time," + ",".join(f"s{k}" for k in range(series))]
    for t in range(steps):
        day, week = math.sin(2 * math.pi * t / 24), math.sin(2 * math.pi * t / 168)
        cells = [
            f"{lv * (1 + 0.3 * day + 0.1 * week + 0.05 * rng.gauss(0, 1)):.3f}" for lv in levels
        ]
        stamp = time.strftime("%Y-%m-%d %H:%M", time.gmtime(1_704_067_200 + 3600 * t))
        lines.append(stamp + "," + ",".join(cells))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


TASKS = {  # task: (data writer, unit of its throughput)
    "lm": (write_text, "tokens/s"),
    "forecast": (write_series, "values/s"),
}


def train_row(task: str, data: Path, out: Path, *, nproc: int, minutes: float, threads: int,
              device: str = "cpu", precision: str = "fp32", seed: int = 0) -> dict:  # fmt: skip
    """One ``rnnkit TASK train`` run; its steps, tokens/s and validation loss."""
    command = [sys.executable, "-m", "rnnkit", task, "train", "--data", str(data), "--out",
               str(out), "--max-minutes", str(minutes), "--eval-every", "100000", "--quiet",
               "--threads", str(threads), "--device", device, "--precision", precision,
               "--seed", str(seed), "--nproc", str(nproc)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    valid = [r for r in records if r["split"] == "valid"]
    summary = json.loads((out / "trainer.json").read_text())
    return {
        "processes": nproc,
        "device": device,
        "precision": precision,
        "steps": summary["step"],
        "tokens_per_s": train[-1]["tokens_per_s"] if train else float("nan"),  # all ranks
        "valid": valid[-1]["loss"] if valid else float("nan"),
    }


# --------------------------------------------------------------------- communication share
def comm_worker(steps: int) -> None:
    """Under torchrun: ms per step with each way of averaging the gradients (rank 0 prints)."""
    import torch

    from rnnkit.lm import LMRecipe
    from rnnkit.lm.model import LMConfig, RNNLanguageModel
    from rnnkit.lm.task import LanguageModelTask
    from rnnkit.runs import RunDir
    from rnnkit.training import Runtime, Trainer
    from rnnkit.training.distributed import Group, launch_env

    recipe = LMRecipe()
    rank, world, local = launch_env()
    group = Group(Runtime(device="cpu"), rank, world, local).start()
    ids = torch.randint(0, 60, (recipe.batch_size * (recipe.bptt + 1) * (steps + 2),))
    splits = {"train": ids, "valid": ids[:2000]}
    results = {}
    chosen = group.runtime
    # how the gradients are averaged: the default on CPU ranks of one machine (shared memory),
    # DDP's all-reduce over gloo, and not at all (the communication-free baseline)
    for mode in ("shared memory", "all-reduce", "none"):
        group.runtime = dataclasses.replace(chosen, gradient_sync="ddp" if mode == "all-reduce"
                                            else "auto")  # fmt: skip
        task = LanguageModelTask(splits, batch_size=recipe.batch_size, bptt=recipe.bptt)
        torch.manual_seed(0)
        model = RNNLanguageModel(LMConfig.from_recipe(recipe, 60))
        config = recipe.train_config()
        config.max_minutes, config.max_steps, config.eval_every = None, steps, 0
        ends: list[float] = []
        with tempfile.TemporaryDirectory() as folder:
            run = RunDir.create(Path(folder) / "run", "lm")
            clock = lambda trainer, ends=ends: ends.append(time.perf_counter())  # noqa: E731
            trainer = Trainer(model, task, config, run, group=group, quiet=True, on_step=clock)
            if mode == "none":
                trainer.step_module.average_gradients = lambda: None
            trainer.fit()
        times = sorted(b - a for a, b in zip(ends[1:], ends[2:]))  # warm steps
        results[mode] = 1000 * times[len(times) // 2]  # median
    if rank == 0:
        print(json.dumps(results))
    group.close()


def comm_share(nproc: int, steps: int, threads: int) -> dict:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        __file__,
        "--comm-worker",
        "--steps",
        str(steps),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"the communication measurement failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def task_rows(task: str, configs: list[dict], args: argparse.Namespace) -> list[dict]:
    """The rows of ``task``: each configuration, the mean over the seeds."""
    write, _ = TASKS[task]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        data = write(Path(folder) / ("series.csv" if task == "forecast" else "text.txt"))
        for config in configs:
            runs = [train_row(task, data, Path(folder) / f"r{len(rows)}-{seed}",
                              minutes=args.minutes, threads=args.threads, seed=seed, **config)
                    for seed in range(args.seeds)]  # fmt: skip
            row = dict(runs[0])
            for key in ("steps", "tokens_per_s", "valid"):
                row[key] = sum(r[key] for r in runs) / len(runs)
            rows.append(row)
    return rows


def print_table(task: str, rows: list[dict], args: argparse.Namespace) -> None:
    unit = TASKS[task][1]
    batch = {"lm": "32 x 100 characters", "forecast": "64 windows of 168 + 24 hours"}[task]
    base = rows[0]["tokens_per_s"]
    print(f"\n{task}: {args.minutes:g} min per row, global batch {batch}, {args.seeds} seed(s); "
          f"load average now {load()}")  # fmt: skip
    print(f"| processes | device | precision | steps | {unit} | x 1 process | valid loss |")
    print("|---:|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['processes']} | {r['device']} | {r['precision']} | {r['steps']:.0f} | "
            f"{r['tokens_per_s']:.0f} | {r['tokens_per_s'] / base:.2f} | {r['valid']:.3f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training time per row")
    parser.add_argument("--nproc", type=int, default=2, help="processes of the parallel row")
    parser.add_argument("--tasks", default="lm,forecast", help="comma-separated: lm, forecast")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per row (the mean is shown)")
    parser.add_argument("--steps", type=int, default=12, help="steps timed for the comm share")
    parser.add_argument("--comm-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.comm_worker:
        comm_worker(args.steps)
        return
    import torch

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{args.threads} thread(s) per process; load average before: {load()}")  # fmt: skip
    configs = [dict(nproc=1), dict(nproc=args.nproc)]
    if torch.cuda.is_available():
        gpus = torch.cuda.device_count()
        configs += [dict(nproc=gpus, device="cuda"),
                    dict(nproc=gpus, device="cuda", precision="bf16")]  # fmt: skip
    for task in args.tasks.split(","):
        if task not in TASKS:
            raise SystemExit(f"--tasks: {task!r} is not one of {', '.join(TASKS)}")
        rows = task_rows(task, configs, args)
        print_table(task, rows, args)
        if not torch.cuda.is_available():
            print("cuda, cuda + bf16: no CUDA device on this machine (rows not measured)")
    share = comm_share(args.nproc, args.steps, args.threads)
    shared, ddp, silent = share["shared memory"], share["all-reduce"], share["none"]
    print(f"\ncommunication, {args.nproc} processes (median ms per step): gradients averaged "
          f"through shared memory (the default) {shared:.0f}, by DDP's all-reduce {ddp:.0f}, not "
          f"at all {silent:.0f}; share of a step {max(0.0, 1 - silent / shared):.0%} and "
          f"{max(0.0, 1 - silent / ddp):.0%}")  # fmt: skip
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()
