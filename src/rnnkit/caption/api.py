"""Image captioning end to end: train, load, describe, evaluate (the Python face of the CLI).

Example (a short run on the synthetic scenes, then a caption and the test scores)::

    from rnnkit import caption
    from rnnkit.caption import CaptionRecipe

    caption.train("runs/cap", recipe=CaptionRecipe(max_minutes=2))
    captioner = caption.load("runs/cap")
    best = caption.describe(captioner, ["photo.png"], beam_size=3)[0][0]
    print(best.text)                                  # "a small red circle left of a blue square"
    print(caption.evaluate(captioner, split="test")["beam"]["cider_d"])

A run directory (:mod:`rnnkit.runs`) holds, besides the trainer's files, ``config.json``
(sections ``recipe``, ``model``, ``train``) and ``vocab.json``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rnnkit import runs, search
from rnnkit.caption import metrics, scenes
from rnnkit.caption.data import Split, build_vocab, load_corpus, source_key
from rnnkit.caption.decoding import DECODE_BATCH, decode_inputs
from rnnkit.caption.encoders import check_encoder, model_inputs
from rnnkit.caption.images import load_image
from rnnkit.caption.model import CaptionConfig, CaptionModel
from rnnkit.caption.plots import plot_attention
from rnnkit.caption.recipe import DRAWN_FOR_EVERY_DECODER, CaptionRecipe, rerank_of
from rnnkit.caption.task import TASK, CaptionTask, collate, encode_captions
from rnnkit.data.tokenize import Vocab
from rnnkit.errors import ConfigError
from rnnkit.search import SearchOptions
from rnnkit.training import Runtime, TrainConfig, Trainer, TrainResult, config_dict, fit
from rnnkit.training.distributed import Group, place, rank_zero_first, to_device

logger = logging.getLogger(__name__)

# Words that name an object attribute in the synthetic scenes (for the grounding metric).
GROUNDED_WORDS = {**{c: "colour" for c in scenes.COLOURS}, **{s: "shape" for s in scenes.SHAPES}}


@dataclass
class Captioner:
    """A trained captioning model with what is needed to use it."""

    model: CaptionModel
    vocab: Vocab
    recipe: CaptionRecipe
    run_dir: str
    place: Group | None = None  # the model's device and precision (None: the CPU, fp32)

    def where(self) -> Group:
        """The model's device and precision."""
        if self.place is None:
            self.place = place(self.model)
        return self.place


@dataclass
class Caption:
    """One generated caption."""

    words: list[str]
    text: str
    log_prob: float  # summed log-probability of the words and the end token
    attention: np.ndarray | None  # (T, L) where the decoder looked for each word and the end


def _load_splits(recipe: CaptionRecipe) -> dict[str, Split]:
    return load_corpus(
        recipe.data,
        image_size=recipe.image_size,
        seed=recipe.scene_seed,
        counts=recipe.scenes,
        images_dir=recipe.images_dir,
        encoding=recipe.encoding,
    )


def build_task(
    recipe: CaptionRecipe,
    splits: dict[str, Split],
    vocab: Vocab,
    seed: int,
    report: Callable[[str], None] | None = None,
) -> CaptionTask:
    """The training task of ``recipe`` over ``splits`` (``report`` hears of feature caching)."""
    inputs = {
        name: model_inputs(split.images, recipe.encoder, cache=True, report=report)
        for name, split in splits.items()
    }
    captions = {
        name: encode_captions(split.captions, vocab, recipe.max_length)
        for name, split in splits.items()
    }
    # Scheduled sampling and word dropout were tried on validation for the attention decoder
    # only; the baselines train without them. The reference draw (consensus_references) belongs
    # to the data: every decoder trains on the same draw, so the three compare like for like.
    attention = recipe.decoder == "attention"
    return CaptionTask(
        inputs, captions, vocab, batch_size=recipe.batch_size,
        attention_penalty=recipe.attention_penalty,
        scheduled_sampling=recipe.scheduled_sampling if attention else 0.0,
        word_dropout=recipe.word_dropout if attention else 0.0,
        consensus_references=recipe.consensus_k(),
        selection_references=(
            splits["valid"].captions[: recipe.selection_images]
            if recipe.selection == "cider-d" and "valid" in splits
            else None
        ),
        max_length=recipe.max_length, seed=seed,
    )  # fmt: skip


def train(
    out: str | os.PathLike,
    *,
    recipe: CaptionRecipe | None = None,
    resume: bool = False,
    budget: dict[str, Any] | None = None,
    quiet: bool = True,
    report: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    runtime: Runtime | None = None,
    on_step: Callable[[Trainer], None] | None = None,
) -> TrainResult:
    """Train a captioning model into the run directory ``out`` (or continue it with ``resume``).

    Args:
        out: the run directory (new or empty; an existing caption run with ``resume``).
        recipe: data, model and training settings (ignored on resume: the run's own are used).
        resume: continue the run in ``out`` exactly where it stopped.
        budget: on resume, new values for ``epochs``/``max_steps``/``max_minutes``.
        quiet: no progress bar.
        report: receives one-line progress messages.
        clock: the seconds counter of the time budget (``time.process_time``: CPU time, for
            comparisons on a busy machine).
        runtime: device, precision (see docs/distributed.md); under torchrun every rank calls
            this with the same arguments (rank 0 makes the pictures and features, the others
            read them from the cache).
        on_step: called with the trainer after every optimizer step (and that step's
            validation): for tools that watch training, e.g. ``benchmarks/caption.py --curve``.
    """
    if resume:
        run, config = runs.resume(out, TASK, budget)
        recipe = runs.build(run, config, "recipe", CaptionRecipe.from_dict)
        model_config = runs.build(run, config, "model", CaptionConfig.from_dict)
        train_config = runs.build(run, config, "train", TrainConfig.from_dict)
        vocab = Vocab.from_dict(run.read_json(runs.VOCAB))
        with rank_zero_first():
            splits = _load_splits(recipe)
    else:
        recipe = recipe or CaptionRecipe()
        check_encoder(recipe.encoder)
        train_config = recipe.train_config()
        CaptionConfig.from_recipe(recipe, 1)  # validate the model options before reading any data
        with rank_zero_first():
            splits = _load_splits(recipe)
        vocab = build_vocab(splits["train"], min_freq=recipe.min_freq)
        model_config = CaptionConfig.from_recipe(recipe, len(vocab))
    with rank_zero_first():  # features of a frozen encoder are cached
        task = build_task(recipe, splits, vocab, train_config.seed, report=report)
    if not resume:  # (a resumed run's new budget is written by the trainer once it has resumed)
        stored = {**asdict(recipe), "data": source_key(recipe.data), "scenes": list(recipe.scenes),
                  "consensus_references": recipe.consensus_k(),
                  DRAWN_FOR_EVERY_DECODER: True}  # fmt: skip
        run = runs.start(
            out, TASK, recipe=stored, model=model_config.to_dict(), train=config_dict(train_config)
        )
        run.write_json(runs.VOCAB, vocab.to_dict())
    return fit(run, task, train_config, lambda: CaptionModel(model_config), resume=resume,
               quiet=quiet, report=report, runtime=runtime, clock=clock,
               on_step=on_step)  # fmt: skip


def load(
    run_dir: str | os.PathLike, *, weights: str = runs.BEST, runtime: Runtime | None = None
) -> Captioner:
    """The trained model of ``run_dir`` (best validation weights) and its vocabulary; the model
    on ``runtime``'s device (default: the CPU)."""
    run, config = runs.load(run_dir, TASK, weights=weights, require=[runs.VOCAB])
    recipe = runs.build(run, config, "recipe", CaptionRecipe.from_dict)
    model = CaptionModel(runs.build(run, config, "model", CaptionConfig.from_dict))
    vocab = Vocab.from_dict(run.read_json(runs.VOCAB))
    runs.load_model_weights(run, model, weights)
    return Captioner(model.eval(), vocab, recipe, os.fspath(run_dir), place(model, runtime))


def read_images(captioner: Captioner, paths: Sequence[str | os.PathLike]) -> np.ndarray:
    """The pictures at ``paths`` as the model's ``(N, S, S, 3)`` uint8 images."""
    size = captioner.recipe.image_size
    return np.stack([load_image(p, size) for p in paths])


def decode(captioner: Captioner, inputs: Tensor, **options: Any) -> list[list[search.Hypothesis]]:
    """Captions of a batch of model inputs (``model_inputs(images, recipe.encoder)``).

    ``options`` are :class:`rnnkit.search.SearchOptions` fields (``beam_size``: 1 is greedy
    search; ``n_best``, ``length_penalty``, ``rerank``: the captioning default is the run's,
    :func:`rnnkit.caption.recipe.rerank_of`). Every caption ends with the end token within
    ``recipe.max_length`` steps. Returns up to ``n_best`` hypotheses per image, best first.
    """
    settings = SearchOptions(**{"rerank": rerank_of(captioner.recipe), **options})
    captioner.model.eval()
    where = captioner.where()
    with torch.no_grad(), where.autocast():
        return decode_inputs(
            captioner.model, inputs, captioner.vocab, captioner.recipe.max_length, settings,
            device=where.device,
        )  # fmt: skip


def attention_of(
    captioner: Captioner, inputs: Tensor, captions: Sequence[Sequence[int]]
) -> list[np.ndarray]:
    """Where the attention decoder looks while it reads each caption: ``(len + 1, L)`` per image.

    Row t is the attention of the step that emits word t (the last row: the end token). The
    decoder is deterministic in eval mode, so these are the weights of the decoding itself.
    """
    if captioner.model.config.decoder != "attention":
        raise ConfigError(
            f"this model has no attention (decoder={captioner.model.config.decoder!r}); "
            "train one with --decoder attention"
        )
    vocab, maps, where = captioner.vocab, [], captioner.where()
    with torch.no_grad(), where.autocast():
        for start in range(0, len(captions), DECODE_BATCH):
            part = captions[start : start + DECODE_BATCH]
            # Padding after a caption cannot change the steps before it: one batch for all.
            batch = collate(inputs[start : start + DECODE_BATCH], part, vocab)
            _, alphas = captioner.model(*to_device((batch.inputs, batch.tgt_in), where.device))
            alphas = alphas.float().cpu()
            maps += [alphas[i, : len(words) + 1].numpy() for i, words in enumerate(part)]
    return maps


def describe(
    captioner: Captioner,
    images: Sequence[str | os.PathLike],
    *,
    attention: bool = False,
    **options: Any,
) -> list[list[Caption]]:
    """Captions of the pictures at ``images``: ``n_best`` per picture, best first.

    Args:
        attention: also return each caption's attention maps (attention decoder only).
        options: :class:`rnnkit.search.SearchOptions` fields (``beam_size``, ``n_best``, ...).
    """
    inputs = model_inputs(read_images(captioner, images), captioner.recipe.encoder)
    results = []
    for i, hyps in enumerate(decode(captioner, inputs, **options)):
        maps = (
            attention_of(captioner, inputs[[i] * len(hyps)], [h.tokens for h in hyps])
            if attention
            else [None] * len(hyps)
        )
        row = []
        for h, weights in zip(hyps, maps):
            words = captioner.vocab.decode(h.tokens)
            row.append(Caption(words, " ".join(words), h.log_prob, weights))
        results.append(row)
    return results


def draw_attention(
    captioner: Captioner, image: str | os.PathLike, caption: Caption, path: str | os.PathLike
) -> None:
    """Write the attention figure of ``caption`` (from :func:`describe` with ``attention=True``)."""
    if caption.attention is None:
        raise ValueError("this caption has no attention maps; describe it with attention=True")
    plot_attention(read_images(captioner, [image])[0], caption.words, caption.attention, path)


def _scores(
    hyps: list[list[str]], split: Split, maps: list[np.ndarray] | None, image_size: int
) -> dict[str, Any]:
    """BLEU-1..4, CIDEr-D (whole split and per subset) and grounding of generated captions."""
    refs = split.captions
    cider, per_image = metrics.cider_d(hyps, refs, per_image=True)
    result: dict[str, Any] = {"bleu": metrics.bleu(hyps, refs), "cider_d": cider}
    if split.objects is not None:
        subsets: dict[str, Any] = {}
        relational = [len(objs) > 1 for objs in split.objects]
        for name, wanted in (("one object", False), ("relations", True)):
            rows = [i for i, r in enumerate(relational) if r == wanted]
            if rows:
                subsets[name] = {
                    "images": len(rows),
                    "bleu": metrics.bleu([hyps[i] for i in rows], [refs[i] for i in rows]),
                    "cider_d": float(np.mean([per_image[i] for i in rows])),
                }
        if "relations" in subsets:  # how often a caption states a true relation
            rows = [i for i, r in enumerate(relational) if r]
            right = [scenes.relation_right(hyps[i], split.objects[i]) for i in rows]
            subsets["relations"]["relation_right"] = float(np.mean(right))
            # Of the captions relating two objects named right, how many in the right direction.
            named = [scenes.relation_named(hyps[i], split.objects[i]) for i in rows]
            named = [n for n in named if n is not None]
            subsets["relations"]["relations_named"] = len(named)
            subsets["relations"]["direction_right"] = (
                float(np.mean([scenes.relation(x, y) == rel for rel, x, y in named]))
                if named
                else None
            )
        result["subsets"] = subsets
        if maps is not None:
            result["grounding"] = metrics.grounding(
                hyps, maps, split.objects, image_size=image_size, vocabulary=GROUNDED_WORDS
            )
    return result


def evaluate(
    captioner: Captioner | str | os.PathLike,
    *,
    split: str = "test",
    beam_size: int = 3,
    limit: int | None = None,
    runtime: Runtime | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Free-running scores on a split of the run's own data, greedy and with beam search.

    Returns ``{"split", "images", "greedy": scores, "beam": scores, "beam_size"}``; scores hold
    ``bleu`` (BLEU-1..4), ``cider_d``, and for the synthetic scenes ``subsets`` (images with one
    object / with relations) and, for the attention decoder, ``grounding``
    (see :func:`rnnkit.caption.metrics.grounding`).

    Args:
        split: ``"valid"`` or ``"test"`` (or ``"train"``).
        beam_size: the beam width of the second decoding (1: greedy only).
        limit: score only the first ``limit`` images.
        runtime: the device and precision of a run loaded here (default: the CPU, fp32).
        options: more :class:`rnnkit.search.SearchOptions` fields for the beam search
            (``rerank``, ``length_penalty``, ``alpha``).
    """
    if split not in ("train", "valid", "test"):
        raise ConfigError(f"split must be train, valid or test, got {split!r}")
    if not isinstance(captioner, Captioner):
        captioner = load(captioner, runtime=runtime)
    data = _load_splits(captioner.recipe)[split]
    if limit is not None:
        keep = slice(0, limit)
        objects = None if data.objects is None else data.objects[keep]
        data = Split(data.images[keep], data.names[keep], data.captions[keep], objects)
    result: dict[str, Any] = {"split": split, "images": len(data), "beam_size": beam_size}
    inputs = model_inputs(data.images, captioner.recipe.encoder, cache=True)
    for name, width in (("greedy", 1), ("beam", beam_size)):
        if name == "beam" and beam_size == 1:
            break
        settings = options if name == "beam" else {}
        hyps = [h[0].tokens for h in decode(captioner, inputs, beam_size=width, **settings)]
        maps = None
        if captioner.model.config.decoder == "attention" and data.objects is not None:
            maps = attention_of(captioner, inputs, hyps)
        words = [captioner.vocab.decode(h) for h in hyps]
        result[name] = _scores(words, data, maps, captioner.recipe.image_size)
        result[name]["examples"] = [" ".join(w) for w in words[:5]]
    return result
