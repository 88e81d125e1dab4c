"""Language models: train on a text (default: the Shakespeare corpus), evaluate, generate.

  rnnkit lm train --out runs/shake        # the default recipe (see below)
  rnnkit lm train --data my.txt --level word --out runs/w --epochs 3
  rnnkit lm train --resume runs/shake --max-minutes 20   # continue exactly where it stopped
  rnnkit lm eval runs/shake --split test
  rnnkit lm generate runs/shake --prime "ROMEO." --length 500 --temperature 0.8

A run directory holds config.json, vocab.json, model.safetensors (best validation weights),
last.safetensors (checkpoint to resume), trainer.json, metrics.jsonl and loss.png.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rnnkit.lm.recipe import GenerateRecipe, LMRecipe
from rnnkit.options import (
    BEAM,
    NON_NEGATIVE,
    NON_NEGATIVE_NUMBER,
    POSITIVE,
    POSITIVE_NUMBER,
    PROBABILITY,
    SEED,
    TOP_P,
    add_budget_arguments,
    add_command,
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

_D = LMRecipe()
DESCRIPTION = __doc__.replace(
    "(see below)",
    f"(a char-level {_D.num_layers}x{_D.hidden_size} {_D.cell.upper()}, {_D.max_minutes:g} min)",
)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The model, data and training options of ``lm train``, defaults from :class:`LMRecipe`."""
    d = _D
    data = parser.add_argument_group("data")
    data.add_argument("--data", default=d.data, help="corpus name or text file")
    data.add_argument("--encoding", default=d.encoding, help="encoding of --data")
    data.add_argument("--level", choices=["char", "word"], default=d.level, help="tokens")
    model = parser.add_argument_group("model")
    model.add_argument(
        "--cell", choices=["rnn", "lstm", "gru", "mingru", "minlstm"], default=d.cell,
        help="recurrent layer (mingru, minlstm: parallel scans, Feng et al. 2024)",
    )  # fmt: skip
    model.add_argument("--layers", type=POSITIVE, default=d.num_layers, help="recurrent layers")
    model.add_argument("--hidden", type=POSITIVE, default=d.hidden_size, help="hidden state size")
    model.add_argument(
        "--embedding",
        type=POSITIVE,
        help=f"embedding size (default: the word vectors' size, else {d.embedding_dim})",
    )
    model.add_argument("--dropout", type=PROBABILITY, default=d.dropout, help="dropout rate")
    model.add_argument("--layer-norm", action="store_true", help="layer-normalized cells")
    model.add_argument("--zoneout", type=PROBABILITY, default=d.zoneout, help="zoneout probability")
    model.add_argument(
        "--recurrent-dropout", type=PROBABILITY, default=d.recurrent_dropout,
        help="dropout on h_{t-1}, one mask per sequence",
    )  # fmt: skip
    model.add_argument(
        "--weight-drop", type=PROBABILITY, default=d.weight_drop,
        help="DropConnect on the recurrent weights",
    )  # fmt: skip
    model.add_argument("--tie-weights", action="store_true", help="share input/output embeddings")
    model.add_argument(
        "--impl", choices=["auto", "rnnkit", "torch"], default=d.impl,
        help="recurrent kernels: rnnkit's own, PyTorch's fused operator, or auto (the faster)",
    )  # fmt: skip
    add_pretrained_arguments(parser.add_argument_group("pretrained word vectors"))
    train = parser.add_argument_group("training")
    train.add_argument(
        "--bptt", type=POSITIVE, default=d.bptt, help="truncated-BPTT window (tokens)"
    )
    train.add_argument("--batch-size", type=POSITIVE, default=d.batch_size, help="parallel streams")
    train.add_argument(
        "--optimizer", choices=["adamw", "sgd"], default=d.optimizer, help="optimizer"
    )
    train.add_argument("--lr", type=POSITIVE_NUMBER, default=d.lr, help="peak learning rate")
    train.add_argument(
        "--weight-decay", type=NON_NEGATIVE_NUMBER, default=d.weight_decay, help="decoupled"
    )
    train.add_argument(
        "--schedule", choices=["constant", "linear", "cosine"], default=d.schedule, help="decay"
    )
    train.add_argument(
        "--warmup-steps", type=NON_NEGATIVE, default=d.warmup_steps, help="linear warm-up"
    )
    train.add_argument(
        "--clip", type=NON_NEGATIVE_NUMBER, default=d.clip_norm, help="gradient-norm clip"
    )
    train.add_argument(
        "--eval-every", type=NON_NEGATIVE, default=d.eval_every, help="validate every N steps"
    )
    train.add_argument("--seed", type=SEED, default=d.seed, help="random seed")
    add_budget_arguments(train, d)
    add_process_arguments(parser)
    add_runtime_arguments(parser)


def recipe_from_args(args: argparse.Namespace, vectors: Any = None) -> LMRecipe:
    """The :class:`LMRecipe` the parsed options describe (``vectors``: the loaded
    ``--embeddings`` file, whose size is the default embedding size)."""
    recipe = LMRecipe(
        data=args.data, encoding=args.encoding, level=args.level, cell=args.cell,
        embedding_dim=args.embedding or (vectors.dim if vectors else _D.embedding_dim),
        embeddings=args.embeddings, freeze_embeddings=args.freeze_embeddings,
        hidden_size=args.hidden, num_layers=args.layers,
        dropout=args.dropout, tie_weights=args.tie_weights, impl=args.impl, bptt=args.bptt,
        layer_norm=args.layer_norm, zoneout=args.zoneout,
        recurrent_dropout=args.recurrent_dropout, weight_drop=args.weight_drop,
        batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
        weight_decay=args.weight_decay, schedule=args.schedule, warmup_steps=args.warmup_steps,
        clip_norm=args.clip, eval_every=args.eval_every, seed=args.seed,
        **recipe_budget(args, _D),
    )  # fmt: skip
    from rnnkit.lm.api import check_recipe

    check_recipe(recipe)  # the model and training options, before any data is read
    return recipe


def cmd_train(args: argparse.Namespace) -> int:
    from rnnkit import lm
    from rnnkit.embed.api import load_vectors

    set_threads(args)
    if (code := launched(args)) is not None:
        return code
    report = reporter(args)
    resume = args.resume is not None
    out = args.resume or args.out
    vectors = None if resume else load_vectors(args.embeddings)
    recipe = None if resume else recipe_from_args(args, vectors)
    report(f"{'resuming' if resume else 'training'} into {out} ...")
    result = lm.train(
        out, recipe=recipe, resume=resume, budget=resume_changes(args), quiet=args.quiet,
        report=report, vectors=vectors, runtime=runtime_of(args),
    )  # fmt: skip
    valid = result.best_valid_loss
    summary = f"done: {result.steps} steps ({result.epochs_done:.2f} epochs)"
    summary += f" in {result.elapsed_s / 60:.1f} min"
    summary += f", {result.tokens_per_s:.0f} tokens/s"
    if valid is not None:
        summary += f"; best valid loss {valid:.4f} nats/token"
    print(summary)
    print(f"run saved in {out}; try: rnnkit lm generate {out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from rnnkit import lm

    result = lm.evaluate(args.run_dir, data=args.data, encoding=args.encoding, split=args.split,
                         runtime=runtime_of(args))  # fmt: skip
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['split']} split of {result['data']}: {result['tokens']} tokens")
    print(f"loss        {result['loss']:.4f} nats/token")
    print(f"perplexity  {result['perplexity']:.3f}")
    print(f"bits/char   {result['bits_per_char']:.4f}")
    return 0


def write_stdout(text: str) -> None:
    """Stream generated text to stdout as it comes."""
    sys.stdout.write(text)
    sys.stdout.flush()


def cmd_generate(args: argparse.Namespace) -> int:
    from rnnkit import lm

    model = lm.load(args.run_dir)
    prime = args.prime.replace("\\n", "\n")
    lm.generate(
        model, prime, length=args.length, temperature=args.temperature, top_k=args.top_k,
        top_p=args.top_p, greedy=args.greedy, beam=args.beam, seed=args.seed,
        on_text=write_stdout, report=reporter(args),
    )  # fmt: skip
    write_stdout("\n")
    return 0


def register(parser: argparse.ArgumentParser) -> None:
    """Add ``train``, ``eval`` and ``generate`` to the ``lm`` group."""
    parser.description = DESCRIPTION
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = add_command(sub, "train", "train a language model into a run directory", cmd_train)
    add_run_location(train)
    add_train_arguments(train)

    ev = add_command(sub, "eval", "loss, perplexity and bits per character on a split", cmd_eval)
    ev.add_argument("run_dir", metavar="RUN_DIR")
    ev.add_argument("--data", help="another corpus or text file (default: the run's own)")
    ev.add_argument("--encoding", default="utf-8", help="encoding of --data")
    ev.add_argument("--split", choices=["valid", "test", "train"], default="valid", help="split")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    add_runtime_arguments(ev, launch=False)

    gen = add_command(sub, "generate", "generate text, streamed to stdout", cmd_generate)
    gen.add_argument("run_dir", metavar="RUN_DIR")
    g = GenerateRecipe()
    gen.add_argument(
        "--prime", default=g.prime, help="text to continue, \\n for a newline (default: a newline)"
    )
    gen.add_argument("--length", type=POSITIVE, default=g.length, help="tokens to generate")
    gen.add_argument(
        "--temperature", type=POSITIVE_NUMBER, default=g.temperature, help="for sampling"
    )
    gen.add_argument("--top-k", type=POSITIVE, help="sample from the k most likely tokens")
    gen.add_argument("--top-p", type=TOP_P, help="nucleus sampling threshold")
    gen.add_argument("--greedy", action="store_true", help="most likely token every step")
    gen.add_argument(
        "--beam",
        type=BEAM,
        default=g.beam,
        help="beam search of this width (1: no beam search)",
    )
    gen.add_argument("--seed", type=SEED, help="random seed for sampling")
    gen.add_argument("--quiet", action="store_true", help="no warnings on stderr")
