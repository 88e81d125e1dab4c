"""Machine translation: a recurrent encoder-decoder with attention.

The default corpus is git's own message catalog (English -> the language of --lang, French by
default), read from the system's locale directory.

examples:
  rnnkit translate train --out runs/fr --max-minutes 10
  rnnkit translate train --data pairs.tsv --lang de --attention additive --out runs/de
  rnnkit translate run runs/fr "Cannot open '%s'." --beam 5
  echo "Could not read the index." | rnnkit translate run runs/fr
  rnnkit translate eval runs/fr --beam 5 --json
  rnnkit translate attention runs/fr "Could not read the index." --out attention.png
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rnnkit.errors import DataError
from rnnkit.options import (
    BEAM,
    NON_NEGATIVE,
    NON_NEGATIVE_NUMBER,
    POSITIVE,
    POSITIVE_NUMBER,
    PROBABILITY,
    SEED,
    SMOOTHING,
    add_budget_arguments,
    add_command,
    add_ema_argument,
    add_encoding_argument,
    add_force_argument,
    add_pretrained_arguments,
    add_process_arguments,
    add_run_location,
    add_runtime_arguments,
    launched,
    recipe_budget,
    reporter,
    resume_changes,
    runtime_of,
    set_threads,
)
from rnnkit.search.settings import LENGTH_PENALTIES, SearchOptions
from rnnkit.translate.recipe import ATTENTIONS, DEFAULT_EMBEDDING_DIM, TranslateRecipe

_D = TranslateRecipe()


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``translate`` sub-commands to ``parser``; defaults from :class:`TranslateRecipe`."""
    d = _D
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = add_command(commands, "train", "train a translation model into a run directory",
                        train_command)  # fmt: skip
    add_run_location(train)
    data = train.add_argument_group("data")
    data.add_argument(
        "--data", metavar="FILE", help="corpus: FILE.tsv (source<TAB>target), .mo, .po "
        "(default: git's message catalog for --lang)",
    )  # fmt: skip
    add_encoding_argument(data, "a --data .tsv (catalogs name their own)", default=d.encoding)
    data.add_argument("--lang", default=d.lang, help="target language: git's catalog for it")
    data.add_argument(
        "--max-len", type=POSITIVE, default=d.max_len, help="longest sentence, tokens"
    )
    data.add_argument("--min-freq", type=POSITIVE, default=d.min_freq, help="rarer tokens: <unk>")
    model = train.add_argument_group("model")
    model.add_argument("--attention", default=d.attention, choices=ATTENTIONS, help="score")
    model.add_argument("--cell", default=d.cell, choices=("gru", "lstm"), help="recurrent cell")
    model.add_argument(
        "--embedding-dim", type=POSITIVE,
        help=f"embedding size (default: the word vectors' size, else {DEFAULT_EMBEDDING_DIM})",
    )  # fmt: skip
    model.add_argument("--hidden-size", type=POSITIVE, default=d.hidden_size, help="state size")
    model.add_argument("--layers", type=POSITIVE, default=d.num_layers, help="recurrent layers")
    model.add_argument("--dropout", type=PROBABILITY, default=d.dropout, help="dropout rate")
    model.add_argument(
        "--impl", default=d.impl, choices=("rnnkit", "torch", "auto"),
        help="recurrent kernels: rnnkit's own BPTT or torch's fused ones",
    )  # fmt: skip
    model.add_argument(
        "--unidirectional", action="store_true", help="read the source left to right only"
    )
    model.add_argument(
        "--input-feeding",
        action="store_true",
        help="feed the last attentional vector back into the decoder (slower to train)",
    )
    add_pretrained_arguments(train.add_argument_group("pretrained word vectors"), target=True)
    fit = train.add_argument_group("training")
    add_budget_arguments(fit, d)
    fit.add_argument("--batch-size", type=POSITIVE, default=d.batch_size, help="sentence pairs")
    fit.add_argument("--lr", type=POSITIVE_NUMBER, default=d.lr, help="peak learning rate")
    add_ema_argument(fit, d.ema)
    fit.add_argument(
        "--teacher-forcing", type=PROBABILITY, default=d.teacher_forcing, help="ratio in [0, 1]"
    )
    fit.add_argument(
        "--label-smoothing", type=SMOOTHING, default=d.label_smoothing, help="in the training loss"
    )
    fit.add_argument(
        "--eval-every", type=NON_NEGATIVE, default=d.eval_every, help="validate every N steps"
    )
    fit.add_argument("--seed", type=SEED, default=d.seed, help="random seed")
    add_process_arguments(train)
    add_runtime_arguments(train)

    run = add_command(commands, "run", "translate TEXT arguments, or lines of stdin", run_command)
    run.add_argument("run_dir", metavar="RUN_DIR")
    run.add_argument("text", metavar="TEXT", nargs="*", help="texts (default: lines of stdin)")
    _add_search_options(run)
    run.add_argument("--n-best", type=BEAM, default=1, help="print the K best candidates")
    add_runtime_arguments(run, launch=False)
    run.set_defaults(trailing="text")

    evaluate = add_command(
        commands, "eval", "BLEU, chrF and placeholder fidelity on a split", eval_command
    )
    evaluate.add_argument("run_dir", metavar="RUN_DIR")
    evaluate.add_argument(
        "--split", default="test", choices=("train", "valid", "test"), help="corpus split"
    )
    _add_search_options(evaluate)
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    add_runtime_arguments(evaluate, launch=False)

    attention = add_command(
        commands, "attention", "draw the attention matrix as a heat map", attention_command
    )
    attention.add_argument("run_dir", metavar="RUN_DIR")
    attention.add_argument("text", metavar="TEXT")
    attention.add_argument(
        "--out", required=True, metavar="FILE.png",
        help="image to write (format from the suffix, PNG without one); an existing file is "
        "replaced only if it is an image rnnkit drew, or with --force",
    )  # fmt: skip
    add_force_argument(attention)
    attention.add_argument("--beam", type=BEAM, default=1, help="beam size (1: greedy)")


def _add_search_options(parser: argparse.ArgumentParser) -> None:
    d = SearchOptions()
    parser.add_argument("--beam", type=BEAM, default=d.beam_size, help="beam size (1: greedy)")
    parser.add_argument(
        "--length-penalty", default=d.length_penalty, choices=LENGTH_PENALTIES,
        help="ranking of beam hypotheses of different lengths",
    )  # fmt: skip
    parser.add_argument(
        "--alpha", type=NON_NEGATIVE_NUMBER, default=d.alpha, help="exponent of gnmt"
    )
    parser.add_argument(
        "--keep-unk",
        action="store_true",
        help="print <unk> instead of copying the most attended source token",
    )


def recipe_from_args(args: argparse.Namespace) -> TranslateRecipe:
    """The :class:`TranslateRecipe` the options describe (checked before any data is read)."""
    recipe = TranslateRecipe(
        data=args.data, encoding=args.encoding, lang=args.lang, max_len=args.max_len,
        min_freq=args.min_freq,
        attention=args.attention, cell=args.cell, embedding_dim=args.embedding_dim,
        hidden_size=args.hidden_size, num_layers=args.layers, dropout=args.dropout,
        impl=args.impl, bidirectional=not args.unidirectional, input_feeding=args.input_feeding,
        embeddings=args.embeddings, target_embeddings=args.target_embeddings,
        freeze_embeddings=args.freeze_embeddings, batch_size=args.batch_size,
        teacher_forcing=args.teacher_forcing, label_smoothing=args.label_smoothing, lr=args.lr,
        ema=args.ema, eval_every=args.eval_every, seed=args.seed, **recipe_budget(args, _D),
    )  # fmt: skip
    from rnnkit.translate.api import check_recipe

    check_recipe(recipe)  # the model and training options, before any data is read
    return recipe


def train_command(args: argparse.Namespace) -> int:
    from rnnkit import translate

    set_threads(args)
    if (code := launched(args)) is not None:
        return code
    resume = args.resume is not None
    out = args.resume or args.out
    recipe = None if resume else recipe_from_args(args)
    result = translate.train(
        out, recipe=recipe, resume=resume, budget=resume_changes(args), quiet=args.quiet,
        report=reporter(args), runtime=runtime_of(args),
    )  # fmt: skip
    print(
        f"done: {result.steps} steps ({result.epochs_done:.1f} epochs) in "
        f"{result.elapsed_s / 60:.1f} min; best valid loss {result.best_valid_loss:.3f} "
        f"nats/token; run in {out}"
    )
    print(f'try: rnnkit translate run {out} "Could not read the index."')
    return 0


def _read_texts(args: argparse.Namespace) -> list[str]:
    if args.text:
        return list(args.text)
    return [line.rstrip("\n") for line in sys.stdin]


def _search_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "beam_size": args.beam,
        "length_penalty": args.length_penalty,
        "alpha": args.alpha,
        "replace_unknown": not args.keep_unk,
    }


def run_command(args: argparse.Namespace) -> int:
    from rnnkit import translate

    blank = [i for i, text in enumerate(args.text, start=1) if not text.strip()]
    if blank:  # (a blank line of stdin is kept: it prints an empty line, so lines stay aligned)
        raise DataError(f"text {blank[0]} is empty; give a sentence to translate")
    translator = translate.load(args.run_dir, runtime=runtime_of(args))
    texts = _read_texts(args)
    # A text the model cannot read (no known word) is reported and printed as an empty line;
    # the others are translated.
    problems = {i: translator.problem(text) for i, text in enumerate(texts) if text.strip()}
    present = [texts[i] for i, problem in problems.items() if problem is None]
    options = _search_options(args)
    results = iter(translate.translate(translator, present, n_best=args.n_best, **options))
    for i, text in enumerate(texts):
        problem = problems.get(i)
        if problem is not None:
            print(f"rnnkit: error: text {i + 1}: {problem}", file=sys.stderr)
        candidates = next(results) if text.strip() and problem is None else []
        if args.n_best == 1:
            print(candidates[0].text if candidates else "")
        else:
            for rank, candidate in enumerate(candidates, start=1):
                print(f"{rank}\t{candidate.score:.3f}\t{candidate.text}")
            print()
    return 2 if any(p is not None for p in problems.values()) else 0


def eval_command(args: argparse.Namespace) -> int:
    from rnnkit import translate

    scores = translate.evaluate(args.run_dir, args.split, runtime=runtime_of(args),
                                **_search_options(args))  # fmt: skip
    if args.json:
        print(json.dumps(scores))
        return 0
    if scores["sentences_with_placeholders"]:
        kept = (
            f"{scores['placeholders_kept']:.1%} of {scores['sentences_with_placeholders']} "
            f"sentences with placeholders (references: {scores['placeholders_kept_reference']:.1%})"
        )
    else:  # a corpus without %s, {name}, ...: a share of nothing is no figure ("nan%")
        kept = "no sentence has placeholders"
    print(
        f"{scores['split']}: {scores['sentences']} sentences, beam {scores['beam_size']}\n"
        f"BLEU  {scores['bleu']:.2f}\n"
        f"chrF  {scores['chrf']:.2f}\n"
        f"placeholders kept  {kept}"
    )
    return 0


def attention_command(args: argparse.Namespace) -> int:
    from rnnkit import translate
    from rnnkit.plots import check_image_output, plot_attention
    from rnnkit.translate.tokens import JOINER, detokenize

    out = check_image_output(args.out, force=args.force)
    translator = translate.load(args.run_dir)
    source, output, weights = translator.attention(args.text, beam_size=args.beam)
    labels = [[t.removeprefix(JOINER) for t in tokens] for tokens in (source, output)]
    written = plot_attention(*labels, weights, out)
    print(detokenize(output[:-1]))
    print(f"wrote {written}")
    return 0
