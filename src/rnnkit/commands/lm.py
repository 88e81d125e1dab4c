"""Language models: train on a text (default: the Shakespeare corpus), evaluate, generate.

  rnnkit lm train --out runs/shake --max-minutes 10      # char-level LSTM, default recipe
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

from rnnkit.commands.embed import add_pretrained_arguments, load_pretrained


def _recipe_defaults() -> Any:
    from rnnkit.recipes import LMRecipe

    return LMRecipe()


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The model, data and training options of ``lm train`` (also used by ``rnnkit demo``)."""
    d = _recipe_defaults()
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data", default=d.data, help="corpus name or text file (default: %(default)s)"
    )
    data.add_argument("--encoding", default=d.encoding, help="encoding of --data (default: utf-8)")
    data.add_argument(
        "--level", choices=["char", "word"], default=d.level, help="tokens (default: char)"
    )
    model = parser.add_argument_group("model")
    model.add_argument("--cell", choices=["rnn", "lstm", "gru"], default=d.cell)
    model.add_argument("--layers", type=int, default=d.num_layers, help="recurrent layers")
    model.add_argument("--hidden", type=int, default=d.hidden_size, help="hidden state size")
    model.add_argument(
        "--embedding",
        type=int,
        help=f"embedding size (default: the word vectors' size, else {d.embedding_dim})",
    )
    model.add_argument("--dropout", type=float, default=d.dropout)
    model.add_argument("--tie-weights", action="store_true", help="share input/output embeddings")
    model.add_argument(
        "--impl", choices=["auto", "rnnkit", "torch"], default=d.impl,
        help="recurrent kernels: rnnkit's own, PyTorch's fused operator, or auto (the faster)",
    )  # fmt: skip
    add_pretrained_arguments(parser.add_argument_group("pretrained word vectors"))
    train = parser.add_argument_group("training")
    train.add_argument("--bptt", type=int, default=d.bptt, help="truncated-BPTT window (tokens)")
    train.add_argument("--batch-size", type=int, default=d.batch_size, help="parallel streams")
    train.add_argument("--optimizer", choices=["adamw", "sgd"], default=d.optimizer)
    train.add_argument("--lr", type=float, default=d.lr, help="peak learning rate")
    train.add_argument("--weight-decay", type=float, default=d.weight_decay)
    train.add_argument("--schedule", choices=["constant", "linear", "cosine"], default=d.schedule)
    train.add_argument("--warmup-steps", type=int, default=d.warmup_steps)
    train.add_argument("--clip", type=float, default=d.clip_norm, help="gradient-norm clip")
    train.add_argument(
        "--eval-every", type=int, default=d.eval_every, help="validate every N steps"
    )
    train.add_argument("--seed", type=int, default=d.seed)
    add_budget_arguments(train)
    parser.add_argument("--quiet", action="store_true", help="no progress bar or progress lines")
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads (default: torch's; 1 can be faster for "
        "small models on a busy machine)",
    )  # fmt: skip


def add_budget_arguments(group: Any) -> None:
    group.add_argument("--epochs", type=int, help="passes over the training text")
    group.add_argument("--max-steps", type=int, help="optimizer steps")
    group.add_argument(
        "--max-minutes", type=float, help="wall-clock budget (default when no budget is given: 10)"
    )


def recipe_from_args(args: argparse.Namespace, vectors: Any = None) -> Any:
    """The :class:`rnnkit.recipes.LMRecipe` the parsed options describe (``vectors``: the loaded
    ``--embeddings`` file, whose size is the default embedding size)."""
    from rnnkit.recipes import LMRecipe

    budget = {"epochs": args.epochs, "max_steps": args.max_steps, "max_minutes": args.max_minutes}
    if all(v is None for v in budget.values()):
        budget["max_minutes"] = LMRecipe().max_minutes
    recipe = LMRecipe(
        data=args.data, encoding=args.encoding, level=args.level, cell=args.cell,
        embedding_dim=args.embedding or (vectors.dim if vectors else LMRecipe().embedding_dim),
        embeddings=args.embeddings, freeze_embeddings=args.freeze_embeddings,
        hidden_size=args.hidden, num_layers=args.layers,
        dropout=args.dropout, tie_weights=args.tie_weights, impl=args.impl, bptt=args.bptt,
        batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
        weight_decay=args.weight_decay, schedule=args.schedule, warmup_steps=args.warmup_steps,
        clip_norm=args.clip, eval_every=args.eval_every, seed=args.seed, **budget,
    )  # fmt: skip
    recipe.model_config(1)  # validate the model options before any data is read
    recipe.train_config()
    return recipe


def _reporter(args: argparse.Namespace) -> Any:
    if getattr(args, "quiet", False):
        return lambda message: None

    def report(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    return report


def run_training(args: argparse.Namespace, out: str, *, resume: bool) -> tuple[int, Any]:
    """Train (or resume) into ``out``; prints the outcome. Returns (exit code, result)."""
    from rnnkit import lm
    from rnnkit.training import TrainingInterrupted

    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    report = _reporter(args)
    budget = {
        k: v
        for k, v in (
            ("epochs", args.epochs),
            ("max_steps", args.max_steps),
            ("max_minutes", args.max_minutes),
        )
        if v is not None
    }
    vectors = None if resume else load_pretrained(args.embeddings)
    recipe = None if resume else recipe_from_args(args, vectors)
    report(f"{'resuming' if resume else 'training'} into {out} ...")
    try:
        result = lm.train(
            out,
            recipe=recipe,
            resume=resume,
            budget=budget,
            quiet=args.quiet,
            report=report,
            vectors=vectors,
        )
    except TrainingInterrupted as exc:
        print(f"rnnkit: {exc}", file=sys.stderr)
        return 130, None
    valid = result.best_valid_loss
    summary = f"done: {result.steps} steps ({result.epochs_done:.2f} epochs)"
    summary += f" in {result.elapsed_s / 60:.1f} min"
    summary += f", {result.tokens_per_s:.0f} tokens/s"
    if valid is not None:
        summary += f"; best valid loss {valid:.4f} nats/token"
    print(summary)
    print(f"run saved in {out}; try: rnnkit lm generate {out}")
    return 0, result


def cmd_train(args: argparse.Namespace) -> int:
    return run_training(args, args.out or args.resume, resume=args.resume is not None)[0]


def cmd_eval(args: argparse.Namespace) -> int:
    from rnnkit import lm

    result = lm.evaluate(args.run_dir, data=args.data, encoding=args.encoding, split=args.split)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['split']} split of {result['data']}: {result['tokens']} tokens")
    print(f"loss        {result['loss']:.4f} nats/token")
    print(f"perplexity  {result['perplexity']:.3f}")
    print(f"bits/char   {result['bits_per_char']:.4f}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from rnnkit import lm

    model = lm.load(args.run_dir)
    prime = args.prime.replace("\\n", "\n")

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    lm.generate(
        model, prime, length=args.length, temperature=args.temperature, top_k=args.top_k,
        top_p=args.top_p, greedy=args.greedy, beam=args.beam, seed=args.seed, on_text=write,
        report=_reporter(args),
    )  # fmt: skip
    write("\n")
    return 0


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = sub.add_parser("train", help="train a language model into a run directory")
    where = train.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", metavar="RUN_DIR", help="new run directory")
    where.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    add_train_arguments(train)
    train.set_defaults(func=cmd_train)

    ev = sub.add_parser("eval", help="loss, perplexity and bits per character on a split")
    ev.add_argument("run_dir", metavar="RUN_DIR")
    ev.add_argument("--data", help="another corpus or text file (default: the run's own)")
    ev.add_argument("--encoding", default="utf-8", help="encoding of --data")
    ev.add_argument("--split", choices=["valid", "test", "train"], default="valid")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.set_defaults(func=cmd_eval)

    gen = sub.add_parser("generate", help="generate text, streamed to stdout")
    gen.add_argument("run_dir", metavar="RUN_DIR")
    gen.add_argument("--prime", default="\n", help="text to continue (\\n for a newline)")
    gen.add_argument("--length", type=int, default=500, help="tokens to generate")
    gen.add_argument("--temperature", type=float, default=0.8)
    gen.add_argument("--top-k", type=int, help="sample from the k most likely tokens")
    gen.add_argument("--top-p", type=float, help="nucleus sampling threshold")
    gen.add_argument("--greedy", action="store_true", help="most likely token every step")
    gen.add_argument("--beam", type=int, default=0, help="beam search of this width")
    gen.add_argument("--seed", type=int, help="random seed for sampling")
    gen.add_argument("--quiet", action="store_true", help="no warnings on stderr")
    gen.set_defaults(func=cmd_generate)
