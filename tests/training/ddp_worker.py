"""Scenarios of distributed training, run by every rank under torchrun and, with one process,
by the tests as the reference (tests/training/test_training_distributed.py).

    python -m torch.distributed.run --standalone --nproc_per_node=2 ddp_worker.py OUT

Each rank writes, per scenario, its final weights (``OUT/NAME.rankR.safetensors``) and a digest
of its weights after every step (``OUT/NAME.rankR.json``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import signal
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from rnnkit.errors import TrainingInterrupted
from rnnkit.lm.model import LMConfig, RNNLanguageModel
from rnnkit.lm.task import LanguageModelTask
from rnnkit.runs import RunDir
from rnnkit.training import Runtime, TrainConfig, Trainer, seed_everything
from rnnkit.training.distributed import Group, launch_env

LM_STEPS = 4
APP_STEPS = {"speech": 6, "caption": 5, "forecast": 4}  # each crosses an epoch's end


def parallel_corpus(path: Path, n: int) -> Path:
    """tests/conftest.py's generated parallel corpus (loaded by path: other test folders have a
    conftest module of their own)."""
    conftest = Path(__file__).resolve().parents[1] / "conftest.py"
    spec = importlib.util.spec_from_file_location("rnnkit_tests_conftest", conftest)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.parallel_corpus(path, n=n)


VOCAB = 11


def digest(model: torch.nn.Module) -> str:
    """A hash of the exact bytes of every weight."""
    h = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        h.update(name.encode() + value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def lm_task() -> LanguageModelTask:
    """Random token ids: 4 streams of 60 tokens, windows of 5."""
    g = torch.Generator().manual_seed(0)
    splits = {s: torch.randint(0, VOCAB, (n,), generator=g) for s, n in
              (("train", 240), ("valid", 60), ("test", 60))}  # fmt: skip
    return LanguageModelTask(splits, batch_size=4, bptt=5)


def lm_model(cell: str, dropout: float = 0.0) -> RNNLanguageModel:
    config = LMConfig(vocab_size=VOCAB, cell=cell, embedding_dim=6, hidden_size=7, num_layers=2,
                      dropout=dropout)  # fmt: skip
    return RNNLanguageModel(config).double()


def translation_setup(corpus: Path):
    """A tiny translation task whose 21 training pairs make 5 batches of 4 and one of 1 (fewer
    pairs than ranks: the uneven case), and its model builder."""
    from rnnkit.translate.api import read_data
    from rnnkit.translate.model import Seq2Seq, Seq2SeqConfig
    from rnnkit.translate.recipe import TranslateRecipe
    from rnnkit.translate.task import TranslationTask

    recipe = TranslateRecipe(data=str(corpus), min_freq=1, embedding_dim=6, hidden_size=8,
                             dropout=0.0, batch_size=4, max_steps=8)  # fmt: skip
    data = read_data(recipe)
    data.examples["train"] = data.examples["train"][:21]
    task = TranslationTask(data, recipe)
    config = Seq2SeqConfig.from_recipe(recipe, len(data.source_vocab), len(data.target_vocab),
                                       pad_index=data.target_vocab.pad_index)  # fmt: skip
    return task, lambda: Seq2Seq(config).double()


def speech_setup():
    """A tiny speech task: 12 utterances of random frames in batches of at most 60 padded
    frames (the longest alone: the uneven case), SpecAugment on (each utterance's masks come
    from its place in the global batch, so they are the same with any number of ranks)."""
    from rnnkit.speech.data import Example
    from rnnkit.speech.features import SpecAugment
    from rnnkit.speech.model import AcousticConfig, AcousticModel
    from rnnkit.speech.task import SpeechTask

    g = torch.Generator().manual_seed(1)

    def utterance(frames):
        feats = torch.randn(frames, 4, generator=g, dtype=torch.float64)
        return Example(feats, torch.randint(1, 5, (1 + frames // 8,), generator=g), "x")

    def utterances(lengths):
        return [utterance(frames) for frames in lengths]

    splits = {"train": utterances([6, 7, 8, 9, 10, 11, 12, 14, 16, 18, 20, 40]),
              "valid": utterances([9, 13, 17, 21])}  # fmt: skip
    augment = SpecAugment(freq_masks=1, freq_width=1, time_masks=1, time_width=2)
    task = SpeechTask(splits, batch_frames=60, seed=2, augment=augment)
    config = AcousticConfig(n_mels=4, num_classes=5, stack=2, hidden_size=6, num_layers=1,
                            dropout=0.0)  # fmt: skip
    return task, lambda: AcousticModel(config).double()


def caption_setup():
    """A tiny captioning task on feature grids (a frozen encoder: the trained CNN's batch
    normalisation would see each rank's share only), attention penalty on; 13 images in
    batches of 4 (the last of 1: the uneven case)."""
    from rnnkit.caption.data import SPECIALS
    from rnnkit.caption.model import CaptionConfig, CaptionModel
    from rnnkit.caption.task import CaptionTask
    from rnnkit.data.tokenize import Vocab

    vocab = Vocab(["a", "b", "c", "d"], specials=SPECIALS)
    g = torch.Generator().manual_seed(2)

    def split(n):
        features = torch.randn(n, 4, 5, generator=g, dtype=torch.float64)  # (N, L, F): 2x2 grid
        refs = [[torch.randint(len(SPECIALS), len(vocab), (int(k),), generator=g).tolist()
                 for k in torch.randint(1, 5, (2,), generator=g)] for _ in range(n)]  # fmt: skip
        return features, refs

    (train, train_refs), (valid, valid_refs) = split(13), split(4)
    task = CaptionTask({"train": train, "valid": valid}, {"train": train_refs,
                       "valid": valid_refs}, vocab, batch_size=4, seed=1)  # fmt: skip
    config = CaptionConfig(vocab_size=len(vocab), encoder="efficientnet-lite0", feature_size=5,
                           embedding_dim=4, hidden_size=6, attention_size=4,
                           dropout=0.0)  # fmt: skip
    return task, lambda: CaptionModel(config).double()


def forecast_setup(csv: Path):
    """A tiny forecasting task: windows of an hourly series in batches of 6, in float64."""
    from rnnkit.forecast.api import read_data
    from rnnkit.forecast.model import DeepAR, ForecastConfig
    from rnnkit.forecast.recipe import ForecastRecipe
    from rnnkit.forecast.task import ForecastTask, Windows, covariate_stats

    data = read_data(ForecastRecipe(data=str(csv)))
    windows = Windows(data, max_lag=2, context=8, horizon=4,
                      cov_stats=covariate_stats(data, data.cuts()[0]))  # fmt: skip
    cut = windows.batch
    windows.batch = lambda *a, **k: type(cut(*a, **k))(  # the windows in float64
        *(t.double() if t.is_floating_point() else t for t in cut(*a, **k))
    )
    task = ForecastTask(windows, batch_size=6, steps_per_epoch=3, seed=4)
    config = ForecastConfig(lags=[1, 2], num_features=data.features(data.series[0]).shape[1],
                            hidden_size=6, num_layers=1, dropout=0.0)  # fmt: skip
    return task, lambda: DeepAR(config).double()


def series_csv(path: Path) -> Path:
    """An hourly series of 120 steps (a daily cycle and noise) as a CSV file."""
    g = torch.Generator().manual_seed(5)
    values = torch.sin(torch.arange(120) * 6.2832 / 24) + 0.1 * torch.randn(120, generator=g)
    lines = ["time,value"] + [f"2024-01-{1 + t // 24:02d} {t % 24:02d}:00,{10 + v:.5f}"
                              for t, v in enumerate(values.tolist())]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


def scenario(name, out: Path, task, build, steps: int, group: Group, *, hook=None, stop_at=None,
             resume: bool = False, dropout_seed: int = 3, sync: str = "auto"):  # fmt: skip
    """Train ``steps`` steps into ``out/NAME``; write the weights, the per-step digests and the
    module that averaged the gradients. ``sync``: the runtime's ``gradient_sync``; ``hook``:
    called with the trainer before it trains."""
    chosen = group.runtime
    group.runtime = dataclasses.replace(chosen, gradient_sync=sync)
    try:
        _scenario(name, out, task, build, steps, group, hook=hook, stop_at=stop_at,
                  resume=resume, dropout_seed=dropout_seed)  # fmt: skip
    finally:
        group.runtime = chosen


def _scenario(name, out, task, build, steps, group, *, hook, stop_at, resume, dropout_seed):
    rank = group.rank
    seed_everything(dropout_seed)
    model = build()
    config = TrainConfig(max_steps=steps, eval_every=2, log_every=1, lr=1e-2, seed=dropout_seed)
    run = RunDir.open(out / name, task.name) if resume else RunDir.create(out / name, task.name)
    digests: list[str] = []

    def on_step(trainer):
        digests.append(digest(trainer.model))
        if stop_at is not None and trainer.step == stop_at[0] and rank == stop_at[1]:
            os.kill(os.getpid(), signal.SIGTERM)  # one rank is told to stop: all must stop

    trainer = Trainer(model, task, config, run, on_step=on_step, group=group)
    if hook is not None:
        hook(trainer)
    try:
        trainer.fit(resume=resume)
        status = "finished"
    except TrainingInterrupted:
        status = "interrupted"
    tag = f"{name}{'.resumed' if resume else ''}.rank{rank}"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(out / f"{tag}.safetensors"))  # fmt: skip
    wrapper = type(trainer.step_module).__name__
    (out / f"{tag}.json").write_text(json.dumps({"digests": digests, "status": status,
                                                 "wrapper": wrapper}))  # fmt: skip


def skip_allreduce(state, bucket):
    """A DDP communication hook that does not communicate: each rank keeps its own gradients."""
    future = torch.futures.Future()
    future.set_result(bucket.buffer())
    return future


def break_ddp(trainer) -> None:
    trainer.step_module.register_comm_hook(None, skip_allreduce)


def break_shared_memory(trainer) -> None:
    """The shared-memory average replaced by nothing: each rank keeps its own gradients."""
    trainer.step_module.average_gradients = lambda: None


def gradient_cases(out: Path, group: Group) -> None:
    """SharedMemoryDataParallel's average on set gradients, twice (both regions): weight ``a``
    has a gradient on every rank, ``b`` on rank 0 only, ``c`` on none; written to
    ``out/gradients.rankR.json`` with whether the region's file name still exists."""
    from rnnkit.training.distributed import SharedMemoryDataParallel, shared_region

    module = torch.nn.Module()
    module.a = torch.nn.Parameter(torch.zeros(2, 3, dtype=torch.float64))
    module.b = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
    module.c = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    region, path = shared_region(module, group)
    parallel = SharedMemoryDataParallel(module, region, path)
    results = []
    for call in range(2):
        base = 10.0 * (call + 1) + group.rank
        module.a.grad = torch.full((2, 3), base, dtype=torch.float64)
        module.a.grad[0, 0] = base * base
        module.b.grad = torch.full((4,), base, dtype=torch.float64) if group.rank == 0 else None
        module.c.grad = None
        parallel.average_gradients()
        results.append({n: None if p.grad is None else p.grad.tolist()
                        for n, p in module.named_parameters()})  # fmt: skip
    record = {"results": results, "path": path, "exists": os.path.exists(path)}
    (out / f"gradients.rank{group.rank}.json").write_text(json.dumps(record))


def run_all(out: Path, group: Group) -> None:
    """Every scenario; alone (the reference), only those the 2-rank runs are compared with."""
    out.mkdir(parents=True, exist_ok=True)
    for cell in ("rnn", "lstm", "gru"):
        scenario(f"lm_{cell}", out, lm_task(), lambda c=cell: lm_model(c), LM_STEPS, group)
    if group.rank == 0:
        parallel_corpus(out / "pairs.tsv", n=60)
    group.barrier()
    task, build = translation_setup(out / "pairs.tsv")
    scenario("translate", out, task, build, 8, group)
    scenario("speech", out, *speech_setup(), APP_STEPS["speech"], group)
    scenario("caption", out, *caption_setup(), APP_STEPS["caption"], group)
    if group.rank == 0:
        series_csv(out / "series.csv")
    group.barrier()
    scenario("forecast", out, *forecast_setup(out / "series.csv"), APP_STEPS["forecast"], group)
    if group.world_size == 1:
        return
    scenario("lm_broken", out, lm_task(), lambda: lm_model("gru"), LM_STEPS, group,
             hook=break_shared_memory)  # fmt: skip
    # DistributedDataParallel, where the ranks cannot share memory (other machines, GPUs)
    scenario("lm_gru_ddp", out, lm_task(), lambda: lm_model("gru"), LM_STEPS, group, sync="ddp")
    scenario("lm_broken_ddp", out, lm_task(), lambda: lm_model("gru"), LM_STEPS, group,
             hook=break_ddp, sync="ddp")  # fmt: skip
    gradient_cases(out, group)
    # Exact resume: stopped by a SIGTERM to rank 1 after step 3, resumed to step 6 (dropout on).
    straight = lambda: lm_model("lstm", dropout=0.3)  # noqa: E731
    scenario("resume_straight", out, lm_task(), straight, 6, group)
    scenario("resume", out, lm_task(), straight, 6, group, stop_at=(3, 1))
    group.barrier()
    scenario("resume", out, lm_task(), straight, 6, group, resume=True)


if __name__ == "__main__":
    rank, world, local = launch_env()
    torch.set_num_threads(1)
    group = Group(Runtime(device="cpu", timeout_s=60), rank, world, local).start()
    try:
        run_all(Path(sys.argv[1]), group)
    finally:
        group.close()
