"""Language models: train on a text (default: the Shakespeare corpus), evaluate, generate.

  rnnkit lm train --out runs/shake        # the default recipe (see below)
  rnnkit lm train --data my.txt --level word --out runs/w --epochs 3
  rnnkit lm train --recipe awd-lstm --out runs/awd   # a named recipe; options override it
  rnnkit lm train --resume runs/shake --max-minutes 20   # continue exactly where it stopped
  rnnkit lm finetune runs/awd --out runs/awd-ft   # AWD's fine-tuning stage (averaged SGD)
  rnnkit lm eval runs/shake --split test
  rnnkit lm generate runs/shake --prime "ROMEO." --length 500 --temperature 0.8

A run directory holds config.json, vocab.json, model.safetensors (best validation weights),
last.safetensors (checkpoint to resume), trainer.json, metrics.jsonl and loss.png.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields, replace
from typing import Any

from rnnkit.lm.recipe import RECIPES, GenerateRecipe, LMRecipe, get_recipe
from rnnkit.options import (
    BEAM,
    BUDGETS,
    NON_NEGATIVE,
    NON_NEGATIVE_NUMBER,
    POSITIVE,
    POSITIVE_NUMBER,
    PROBABILITY,
    SEED,
    TOP_P,
    add_budget_arguments,
    add_command,
    add_ema_argument,
    add_encoding_argument,
    add_pretrained_arguments,
    add_process_arguments,
    add_run_location,
    add_runtime_arguments,
    add_threads_argument,
    budget_of,
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


# Options named differently from their recipe field; every other option is its field's name.
FIELD_OF = {"hidden": "hidden_size", "layers": "num_layers", "clip": "clip_norm"}
DEST_OF = {field: dest for dest, field in FIELD_OF.items()}
# Fields with no default of their own on the command line (see recipe_from_args).
NOT_OPTIONS = (*BUDGETS, "embedding_dim", "start_from")


def recipe_defaults(recipe: LMRecipe) -> dict[str, Any]:
    """``recipe``'s values as defaults of the ``lm train`` options."""
    return {
        DEST_OF.get(f.name, f.name): getattr(recipe, f.name)
        for f in fields(recipe)
        if f.name not in NOT_OPTIONS
    }


class RecipeParser(argparse.ArgumentParser):
    """An argument parser whose defaults are those of the recipe named by ``--recipe NAME``
    (wherever it stands), so explicit options override the recipe and ``--help`` shows it."""

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        words = list(sys.argv[1:] if args is None else args)
        name = None
        for i, word in enumerate(words):
            if word == "--recipe" and i + 1 < len(words):
                name = words[i + 1]
            elif word.startswith("--recipe="):
                name = word.split("=", 1)[1]
        if name in RECIPES and any(a.dest == "recipe" for a in self._actions):
            self.set_defaults(**recipe_defaults(RECIPES[name]))
        return super().parse_known_args(words, namespace)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The model, data and training options of ``lm train``, defaults from :class:`LMRecipe`."""
    d = _D
    parser.add_argument(
        "--recipe", default="default", metavar="NAME",
        help=f"named recipe ({', '.join(RECIPES)}); its values become the defaults below",
    )  # fmt: skip
    data = parser.add_argument_group("data")
    data.add_argument("--data", default=d.data, help="corpus name or text file")
    add_encoding_argument(data, "--data", default=d.encoding)
    data.add_argument("--level", choices=["char", "word"], default=d.level, help="tokens")
    data.add_argument(
        "--train-tokens", type=POSITIVE, default=d.train_tokens, metavar="N",
        help="train on the first N tokens of the training split only (default: all)",
    )  # fmt: skip
    data.add_argument(
        "--max-vocab", type=POSITIVE, default=d.max_vocab, metavar="N",
        help="keep the N most frequent training tokens, the rest read as <unk> (default: all)",
    )  # fmt: skip
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
        help=f"embedding size (default: the word vectors' size, else the recipe's: "
        f"{d.embedding_dim} for the default)",
    )
    flag = argparse.BooleanOptionalAction
    model.add_argument(
        "--dropout", type=PROBABILITY, default=d.dropout, help="dropout on the output"
    )
    model.add_argument(
        "--input-dropout", type=PROBABILITY, default=d.input_dropout,
        help="dropout on the embeddings (None: --dropout)",
    )  # fmt: skip
    model.add_argument(
        "--hidden-dropout", type=PROBABILITY, default=d.hidden_dropout,
        help="dropout between the layers (None: --dropout)",
    )  # fmt: skip
    model.add_argument(
        "--locked-dropout", action=flag, default=d.locked_dropout,
        help="one dropout mask per sequence (AWD-LSTM)",
    )  # fmt: skip
    model.add_argument(
        "--embedding-dropout", type=PROBABILITY, default=d.embedding_dropout,
        help="drop whole words' embeddings",
    )  # fmt: skip
    model.add_argument("--layer-norm", action=flag, default=d.layer_norm, help="layer norm cells")
    model.add_argument("--zoneout", type=PROBABILITY, default=d.zoneout, help="zoneout probability")
    model.add_argument(
        "--recurrent-dropout", type=PROBABILITY, default=d.recurrent_dropout,
        help="dropout on h_{t-1}, one mask per sequence",
    )  # fmt: skip
    model.add_argument(
        "--weight-drop", type=PROBABILITY, default=d.weight_drop,
        help="DropConnect on the recurrent weights",
    )  # fmt: skip
    model.add_argument(
        "--tie-weights", action=flag, default=d.tie_weights, help="share input/output embeddings"
    )
    model.add_argument(
        "--impl", choices=["auto", "rnnkit", "torch"], default=d.impl,
        help="recurrent kernels: rnnkit's own, PyTorch's fused operator, or auto (the faster)",
    )  # fmt: skip
    add_pretrained_arguments(parser.add_argument_group("pretrained word vectors"))
    train = parser.add_argument_group("training")
    train.add_argument(
        "--bptt", type=POSITIVE, default=d.bptt, help="truncated-BPTT window (tokens)"
    )
    train.add_argument(
        "--variable-bptt", action=flag, default=d.variable_bptt,
        help="random window lengths around --bptt (AWD-LSTM)",
    )  # fmt: skip
    train.add_argument(
        "--ar", type=NON_NEGATIVE_NUMBER, default=d.ar, help="activation regularisation"
    )
    train.add_argument("--tar", type=NON_NEGATIVE_NUMBER, default=d.tar, help="temporal AR")
    train.add_argument("--batch-size", type=POSITIVE, default=d.batch_size, help="parallel streams")
    train.add_argument(
        "--optimizer", choices=["adamw", "sgd", "nt-asgd"], default=d.optimizer,
        help="nt-asgd: SGD, then averaged SGD once validation stalls",
    )  # fmt: skip
    train.add_argument(
        "--nonmono", type=NON_NEGATIVE, default=d.nonmono, help="nt-asgd: validations looked back"
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
    add_ema_argument(train, d.ema)
    train.add_argument(
        "--eval-every", type=NON_NEGATIVE, default=d.eval_every, help="validate every N steps"
    )
    train.add_argument(
        "--eval-each-epoch", action=flag, default=d.eval_each_epoch,
        help="also validate at the end of every pass over the training text",
    )  # fmt: skip
    train.add_argument("--seed", type=SEED, default=d.seed, help="random seed")
    add_budget_arguments(train, d)
    add_process_arguments(parser)
    add_runtime_arguments(parser)


def recipe_from_args(args: argparse.Namespace, vectors: Any = None) -> LMRecipe:
    """The :class:`LMRecipe` the parsed options describe: the ``--recipe`` named, with the
    options' values (``vectors``: the loaded ``--embeddings`` file, whose size is the default
    embedding size)."""
    base = get_recipe(args.recipe)
    values = {
        field: getattr(args, dest)
        for dest, field in ((DEST_OF.get(f.name, f.name), f.name) for f in fields(base))
        if field not in NOT_OPTIONS
    }
    recipe = replace(
        base, **values, **recipe_budget(args, base),
        embedding_dim=args.embedding or (vectors.dim if vectors else base.embedding_dim),
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
    print_summary(result, out)
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from rnnkit import lm

    set_threads(args)
    if (code := launched(args)) is not None:
        return code
    report = reporter(args)
    report(f"fine-tuning {args.run_dir} into {args.out} ...")
    budget = budget_of(args)
    result = lm.finetune(args.run_dir, args.out, budget=budget, quiet=args.quiet, report=report,
                         runtime=runtime_of(args))  # fmt: skip
    print_summary(result, args.out)
    return 0


def print_summary(result: Any, out: str) -> None:
    """The closing lines of a training command."""
    valid = result.best_valid_loss
    summary = f"done: {result.steps} steps ({result.epochs_done:.2f} epochs)"
    summary += f" in {result.elapsed_s / 60:.1f} min"
    summary += f", {result.tokens_per_s:.0f} tokens/s"
    if valid is not None:
        summary += f"; best valid loss {valid:.4f} nats/token"
    print(summary)
    print(f"run saved in {out}; try: rnnkit lm generate {out}")


def cmd_eval(args: argparse.Namespace) -> int:
    from rnnkit import lm

    set_threads(args)
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

    set_threads(args)
    model = lm.load(args.run_dir, runtime=runtime_of(args))
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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=RecipeParser)

    train = add_command(sub, "train", "train a language model into a run directory", cmd_train)
    add_run_location(train)
    add_train_arguments(train)

    ft = add_command(
        sub, "finetune", "fine-tune a run with averaged SGD from its best weights (AWD-LSTM)",
        cmd_finetune,
    )  # fmt: skip
    ft.add_argument("run_dir", metavar="RUN_DIR", help="the trained run to start from")
    ft.add_argument("--out", metavar="RUN_DIR", required=True, help="new run directory")
    add_budget_arguments(ft, _D)
    add_process_arguments(ft)
    add_runtime_arguments(ft)

    ev = add_command(sub, "eval", "loss, perplexity and bits per character on a split", cmd_eval)
    ev.add_argument("run_dir", metavar="RUN_DIR")
    ev.add_argument("--data", help="another corpus or text file (default: the run's own)")
    add_encoding_argument(ev, "--data")
    ev.add_argument("--split", choices=["valid", "test", "train"], default="valid", help="split")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    add_threads_argument(ev)
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
    gen.add_argument(
        "--top-k", type=POSITIVE, help="sample from the k most likely tokens (default: all)"
    )
    gen.add_argument("--top-p", type=TOP_P, help="nucleus sampling threshold (default: off)")
    gen.add_argument("--greedy", action="store_true", help="most likely token every step")
    gen.add_argument(
        "--beam",
        type=BEAM,
        default=g.beam,
        help="beam search of this width (1: no beam search)",
    )
    gen.add_argument(
        "--seed", type=SEED, help="random seed for sampling (default: a new draw every run)"
    )
    gen.add_argument("--quiet", action="store_true", help="no warnings on stderr")
    add_threads_argument(gen)
    add_runtime_arguments(gen, launch=False)
