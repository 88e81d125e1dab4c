"""Image captioning: a CNN encoder, an LSTM decoder with visual attention (Show, Attend, Tell).

  rnnkit caption train --out runs/cap --max-minutes 10          # synthetic scenes, attention
  rnnkit caption train --out runs/cap-mean --decoder mean       # baseline without attention
  rnnkit caption train --out runs/flickr --data dataset_flickr8k.json --images-dir Flicker8k_Dataset
  rnnkit caption describe runs/cap photo.png --beam 3 --attention attention.png
  rnnkit caption eval runs/cap --split test                      # BLEU-1..4, CIDEr-D, grounding

A run directory holds config.json, vocab.json, model.safetensors (best validation weights),
last.safetensors (checkpoint to resume), trainer.json, metrics.jsonl and loss.png.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rnnkit.caption.recipe import (
    CELL_POSITIONS,
    CONSENSUS_SYNTH,
    GLIMPSE_POSITIONS,
    RERANK,
    RERANK_WEIGHTED,
    SELECTIONS,
    CaptionRecipe,
)
from rnnkit.options import (
    BEAM,
    NON_NEGATIVE,
    NON_NEGATIVE_NUMBER,
    PARTIAL,
    POSITIVE,
    POSITIVE_NUMBER,
    PROBABILITY,
    SEED,
    add_budget_arguments,
    add_command,
    add_ema_argument,
    add_encoding_argument,
    add_force_argument,
    add_process_arguments,
    add_run_location,
    add_runtime_arguments,
    add_threads_argument,
    int_at_least,
    launched,
    number,
    recipe_budget,
    reporter,
    resume_changes,
    runtime_of,
    set_threads,
)
from rnnkit.search.consensus import RERANKINGS
from rnnkit.search.settings import LENGTH_PENALTIES, SearchOptions

_D = CaptionRecipe()
# The CNN halves the side three times (CaptionConfig); the top bounds the images held in memory.
IMAGE_SIZE = int_at_least(32, 1024, multiple=8)
MAX_LENGTH = int_at_least(2, 1000)  # a word and the end token at least
GLIMPSES = int_at_least(1, 4)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The data, model and training options of ``caption train`` (defaults: the recipe's)."""
    d = _D
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data", default=d.data,
        help="synth-scenes, a Karpathy split .json or an image<TAB>caption .tsv "
        "",
    )  # fmt: skip
    data.add_argument("--images-dir", help="image folder of a .json (none: the JSON's folder)")
    add_encoding_argument(data, "a --data .json or .tsv", default=d.encoding)
    data.add_argument("--image-size", type=IMAGE_SIZE, default=d.image_size, help="square side")
    data.add_argument(
        "--scenes", type=POSITIVE, nargs=3, default=list(d.scenes),
        metavar=("TRAIN", "VALID", "TEST"),
        help="synthetic images per split",
    )  # fmt: skip
    data.add_argument(
        "--scene-seed", type=SEED, default=d.scene_seed, help="seed of the synthetic scenes"
    )
    data.add_argument(
        "--min-freq", type=POSITIVE, default=d.min_freq, help="rarer words become <unk>"
    )
    model = parser.add_argument_group("model")
    model.add_argument(
        "--decoder", choices=["attention", "mean", "text"], default=d.decoder,
        help="attention (Show, Attend and Tell), mean (no attention) or text (no image)",
    )  # fmt: skip
    model.add_argument(
        "--encoder", default=d.encoder, help="cnn (trained here) or efficientnet-lite0 (frozen)"
    )
    model.add_argument("--hidden", type=POSITIVE, default=d.hidden_size, help="LSTM state size")
    model.add_argument(
        "--embedding", type=POSITIVE, default=d.embedding_dim, help="word embedding size"
    )
    model.add_argument("--dropout", type=PROBABILITY, default=d.dropout, help="dropout rate")
    model.add_argument(
        "--attention-penalty", type=NON_NEGATIVE_NUMBER, default=d.attention_penalty,
        help="doubly stochastic attention penalty weight",
    )  # fmt: skip
    model.add_argument(
        "--deep-output", action=argparse.BooleanOptionalAction, default=d.deep_output,
        help="the context (attended, or the mean feature) also feeds the output layer "
        "(Xu et al. eq. 7)",
    )  # fmt: skip
    model.add_argument(
        "--cell-positions", choices=CELL_POSITIONS, default=d.cell_positions,
        help="attention: where each grid cell is, in its feature: a learned vector added, or "
        "its x, y appended",
    )  # fmt: skip
    model.add_argument(
        "--glimpses", type=GLIMPSES, default=d.glimpses,
        help="attention: attention heads (glimpses) per step",
    )  # fmt: skip
    model.add_argument(
        "--glimpse-positions", choices=GLIMPSE_POSITIONS, default=d.glimpse_positions,
        help="attention: feed the glimpses' expected cell coordinates to the LSTM and the "
        "output layer: this step's, or this step's and the last step's",
    )  # fmt: skip
    model.add_argument(
        "--max-length", type=MAX_LENGTH, default=d.max_length,
        help="longest caption, end token included",
    )  # fmt: skip
    train = parser.add_argument_group("training")
    train.add_argument("--batch-size", type=POSITIVE, default=d.batch_size, help="images per batch")
    train.add_argument("--lr", type=POSITIVE_NUMBER, default=d.lr, help="peak learning rate")
    train.add_argument(
        "--warmup-steps", type=NON_NEGATIVE, default=d.warmup_steps, help="linear warm-up steps"
    )
    train.add_argument(
        "--clip", type=NON_NEGATIVE_NUMBER, default=d.clip_norm, help="gradient-norm clip"
    )
    add_ema_argument(train, d.ema)
    train.add_argument(
        "--scheduled-sampling", type=PARTIAL, default=d.scheduled_sampling,
        help="attention: probability of feeding the model's own best guess for the previous "
        "word instead of the true one (reached over the first 2 epochs)",
    )  # fmt: skip
    train.add_argument(
        "--word-dropout", type=PARTIAL, default=d.word_dropout,
        help="attention: probability of replacing a previous word by <unk> in training",
    )  # fmt: skip
    train.add_argument(
        "--consensus-references", type=number(0.0, 100.0), default=d.consensus_references,
        metavar="K", help="every decoder: draw an image's training caption with probability "
        "proportional to exp(K * its n-gram agreement with the image's other captions); "
        f"0: uniformly (default: {CONSENSUS_SYNTH:g} on synth-scenes, 0 on your own captions)",
    )  # fmt: skip
    train.add_argument(
        "--eval-every", type=NON_NEGATIVE, default=d.eval_every, help="validate every N steps"
    )
    train.add_argument(
        "--selection", choices=SELECTIONS, default=d.selection,
        help="what chooses the weights kept as best (model.safetensors): cider-d, the CIDEr-D "
        "of greedy captions of the first --selection-images validation pictures, or loss, the "
        "validation loss over all references (the loss is logged either way)",
    )  # fmt: skip
    train.add_argument(
        "--selection-images", type=POSITIVE, default=d.selection_images, metavar="N",
        help="validation pictures captioned at every validation for --selection cider-d",
    )  # fmt: skip
    train.add_argument("--seed", type=SEED, default=d.seed, help="seed of the weights and batches")
    add_budget_arguments(train, d)
    add_process_arguments(parser)
    add_runtime_arguments(parser)


def recipe_from_args(args: argparse.Namespace) -> CaptionRecipe:
    """The recipe the parsed options describe."""
    return CaptionRecipe(
        data=args.data, images_dir=args.images_dir, encoding=args.encoding,
        image_size=args.image_size, scenes=tuple(args.scenes), scene_seed=args.scene_seed,
        min_freq=args.min_freq,
        decoder=args.decoder, encoder=args.encoder, hidden_size=args.hidden,
        embedding_dim=args.embedding, dropout=args.dropout,
        attention_penalty=args.attention_penalty, deep_output=args.deep_output,
        cell_positions=args.cell_positions, glimpses=args.glimpses,
        glimpse_positions=args.glimpse_positions, max_length=args.max_length,
        batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup_steps,
        clip_norm=args.clip, ema=args.ema, scheduled_sampling=args.scheduled_sampling,
        word_dropout=args.word_dropout, consensus_references=args.consensus_references,
        eval_every=args.eval_every, selection=args.selection,
        selection_images=args.selection_images, seed=args.seed,
        **recipe_budget(args, _D),
    )  # fmt: skip


def cmd_train(args: argparse.Namespace) -> int:
    from rnnkit.caption import api
    from rnnkit.training import TrainingInterrupted

    set_threads(args)
    if (code := launched(args)) is not None:
        return code
    report = reporter(args)
    resume = args.resume is not None
    out = args.resume or args.out
    recipe = None if resume else recipe_from_args(args)
    report(f"{'resuming' if resume else 'training'} into {out} ...")
    try:
        result = api.train(
            out, recipe=recipe, resume=resume, quiet=args.quiet, report=report,
            budget=resume_changes(args), runtime=runtime_of(args),
        )  # fmt: skip
    except TrainingInterrupted as exc:
        print(f"rnnkit: {exc}", file=sys.stderr)
        return 130
    summary = f"done: {result.steps} steps ({result.epochs_done:.2f} epochs)"
    summary += f" in {result.elapsed_s / 60:.1f} min"
    if result.selected_on is not None and result.best_score is not None:
        summary += (f"; kept step {result.best_step}: valid {result.selected_on} "
                    f"{100 * result.best_score:.1f} (x100)")  # fmt: skip
    elif result.best_valid_loss is not None:
        summary += f"; best valid loss {result.best_valid_loss:.4f} nats/word"
    print(summary)
    print(f"run saved in {out}; try: rnnkit caption eval {out}")
    return 0


def _attention_path(path: str, index: int, count: int) -> Path:
    """``out.png`` for one image; ``out-1.png``, ``out-2.png``, ... for several."""
    target = Path(path)
    return target if count == 1 else target.with_name(f"{target.stem}-{index + 1}{target.suffix}")


def cmd_describe(args: argparse.Namespace) -> int:
    from rnnkit.caption import api

    set_threads(args)
    targets = []
    if args.attention is not None:
        from rnnkit.plots import check_image_output

        targets = [
            check_image_output(
                _attention_path(args.attention, i, len(args.images)), inputs=args.images,
                force=args.force, option="--attention",
            )
            for i in range(len(args.images))
        ]  # fmt: skip
    captioner = api.load(args.run_dir, runtime=runtime_of(args))
    results = api.describe(
        captioner, args.images, beam_size=args.beam, n_best=args.n_best,
        attention=args.attention is not None, **_search_options(args),
    )  # fmt: skip
    if args.attention is not None:
        for image, captions, target in zip(args.images, results, targets):
            api.draw_attention(captioner, image, captions[0], target)
            print(f"attention of {image} drawn in {target}", file=sys.stderr)
    if args.json:
        rows = [
            {"image": image, "captions": [{"text": c.text, "log_prob": c.log_prob} for c in caps]}
            for image, caps in zip(args.images, results)
        ]
        print(json.dumps(rows if len(rows) > 1 else rows[0]))
        return 0
    for image, captions in zip(args.images, results):
        if len(args.images) > 1 or len(captions) > 1:
            print(f"{image}:")
        for c in captions:
            prefix = "  " if len(args.images) > 1 or len(captions) > 1 else ""
            extra = f"  ({c.log_prob:.3f})" if len(captions) > 1 else ""
            print(f"{prefix}{c.text}{extra}")
    return 0


def _score_line(name: str, scores: dict[str, Any]) -> str:
    bleu = "  ".join(f"{100 * b:5.1f}" for b in scores["bleu"])
    return f"{name:<22} {bleu}  {100 * scores['cider_d']:7.1f}"


def cmd_eval(args: argparse.Namespace) -> int:
    from rnnkit.caption import api

    set_threads(args)
    result = api.evaluate(args.run_dir, split=args.split, beam_size=args.beam, limit=args.limit,
                          runtime=runtime_of(args), **_search_options(args))  # fmt: skip
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['split']} split: {result['images']} images (free-running decoding)")
    print(f"{'':<22} {'BLEU-1  BLEU-2  BLEU-3  BLEU-4':<30}  CIDEr-D")
    for name in ("greedy", "beam"):
        if name not in result:
            continue
        label = "greedy" if name == "greedy" else f"beam {result['beam_size']}"
        scores = result[name]
        print(_score_line(label, scores))
        for subset, part in scores.get("subsets", {}).items():
            print(_score_line(f"  {subset} ({part['images']})", part))
        ground = scores.get("grounding")
        if ground and ground["words"]:
            print(
                f"  grounding: {100 * ground['hit_rate']:.1f}% of {ground['words']} object words "
                f"attend to their object (chance {100 * ground['chance']:.1f}%)"
            )
    return 0


def _add_search_options(parser: argparse.ArgumentParser) -> None:
    """How beam search ranks what it finds (the defaults: captioning's, see ``rerank_of``)."""
    d = SearchOptions()
    parser.add_argument(
        "--rerank", choices=RERANKINGS, default=None,
        help="order the beam's captions by score (none) or by their agreement with each other "
        f"(default: the run's: {RERANK_WEIGHTED} if it was trained with --consensus-references "
        f"above 0, else {RERANK})",
    )  # fmt: skip
    parser.add_argument(
        "--length-penalty", choices=LENGTH_PENALTIES, default=d.length_penalty,
        help="ranking of beam captions of different lengths",
    )  # fmt: skip
    parser.add_argument(
        "--alpha", type=NON_NEGATIVE_NUMBER, default=d.alpha, help="exponent of gnmt"
    )


def _search_options(args: argparse.Namespace) -> dict[str, Any]:
    rerank = {} if args.rerank is None else {"rerank": args.rerank}  # None: the run's default
    return {**rerank, "length_penalty": args.length_penalty, "alpha": args.alpha}


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``caption`` sub-commands; defaults from :class:`CaptionRecipe`."""
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = add_command(
        commands, "train", "train a captioning model into a run directory", cmd_train
    )
    add_run_location(train)
    add_train_arguments(train)

    describe = add_command(commands, "describe", "caption pictures", cmd_describe)
    describe.add_argument("run_dir", metavar="RUN_DIR")
    describe.add_argument("images", nargs="+", metavar="IMAGE")
    describe.add_argument("--beam", type=BEAM, default=1, help="beam width (1: greedy)")
    describe.add_argument("--n-best", type=BEAM, default=1, help="captions per image (<= --beam)")
    _add_search_options(describe)
    describe.add_argument("--json", action="store_true", help="print JSON")
    describe.add_argument(
        "--attention", metavar="OUT.png",
        help="draw the image once per word with its attention (several images: OUT-1.png, ...)",
    )  # fmt: skip
    add_force_argument(describe)
    add_threads_argument(describe)
    add_runtime_arguments(describe, launch=False)
    describe.set_defaults(trailing="images")

    ev = add_command(commands, "eval", "BLEU-1..4, CIDEr-D and grounding on a split", cmd_eval)
    ev.add_argument("run_dir", metavar="RUN_DIR")
    ev.add_argument("--split", choices=["valid", "test", "train"], default="test", help="split")
    ev.add_argument("--beam", type=BEAM, default=3, help="beam width besides greedy (1: greedy)")
    _add_search_options(ev)
    ev.add_argument("--limit", type=POSITIVE, help="score only the first N images (default: all)")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    add_threads_argument(ev)
    add_runtime_arguments(ev, launch=False)
