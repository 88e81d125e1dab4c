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

from rnnkit.commands.embed import add_pretrained_arguments, load_pretrained, start_embedding
from rnnkit.commands.lm import add_budget_arguments

DEFAULT_MINUTES = 10.0  # training budget when none is given


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``translate`` sub-commands to ``parser``."""
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser("train", help="train a translation model into a run directory")
    where = train.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", metavar="RUN_DIR", help="new (or empty) run directory")
    where.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    data = train.add_argument_group("data")
    data.add_argument(
        "--data", metavar="FILE", help="corpus: FILE.tsv (source<TAB>target), .mo, .po"
    )
    data.add_argument(
        "--lang", default="fr", help="target language: git's catalog for it (default: fr)"
    )
    data.add_argument(
        "--max-len", type=int, default=50, help="longest sentence kept, in tokens (default: 50)"
    )
    data.add_argument(
        "--min-freq", type=int, default=2, help="rarer tokens become <unk> (default: 2)"
    )
    model = train.add_argument_group("model")
    model.add_argument(
        "--attention",
        default="additive",
        choices=("none", "additive", "dot", "general", "concat"),
        help="attention score (default: additive)",
    )
    model.add_argument("--cell", default="gru", choices=("gru", "lstm"), help="(default: gru)")
    model.add_argument(
        "--embedding-dim", type=int, help="(default: the word vectors' size, else 128)"
    )
    model.add_argument("--hidden-size", type=int, default=256, help="(default: 256)")
    model.add_argument("--layers", type=int, default=1, help="recurrent layers (default: 1)")
    model.add_argument("--dropout", type=float, default=0.2, help="(default: 0.2)")
    model.add_argument(
        "--impl",
        default="rnnkit",
        choices=("rnnkit", "torch", "auto"),
        help="recurrent kernels: rnnkit's own BPTT or torch's fused ones (default: rnnkit)",
    )
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
    add_budget_arguments(fit)
    fit.add_argument("--batch-size", type=int, default=32, help="sentence pairs (default: 32)")
    fit.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default: 3e-3)")
    fit.add_argument(
        "--teacher-forcing", type=float, default=1.0, help="ratio in [0, 1] (default: 1.0)"
    )
    fit.add_argument("--label-smoothing", type=float, default=0.1, help="(default: 0.1)")
    fit.add_argument("--eval-every", type=int, default=200, help="validate every N steps")
    fit.add_argument("--seed", type=int, default=0, help="(default: 0)")
    fit.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=train_command)

    run = commands.add_parser("run", help="translate TEXT arguments, or lines of stdin")
    run.add_argument("run_dir", metavar="RUN_DIR")
    run.add_argument("text", metavar="TEXT", nargs="*", help="texts (default: lines of stdin)")
    _add_search_options(run)
    run.add_argument("--n-best", type=int, default=1, help="print the K best candidates")
    run.set_defaults(func=run_command, trailing="text")

    evaluate = commands.add_parser("eval", help="BLEU, chrF and placeholder fidelity on a split")
    evaluate.add_argument("run_dir", metavar="RUN_DIR")
    evaluate.add_argument("--split", default="test", choices=("train", "valid", "test"))
    _add_search_options(evaluate)
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.set_defaults(func=eval_command)

    attention = commands.add_parser("attention", help="draw the attention matrix as a heat map")
    attention.add_argument("run_dir", metavar="RUN_DIR")
    attention.add_argument("text", metavar="TEXT")
    attention.add_argument("--out", required=True, metavar="FILE.png")
    attention.add_argument("--beam", type=int, default=1, help="beam size (1: greedy)")
    attention.set_defaults(func=attention_command)


def _add_search_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--beam", type=int, default=1, help="beam size (1: greedy search)")
    parser.add_argument(
        "--length-penalty", default="none", help="none, average or gnmt (beam search ranking)"
    )
    parser.add_argument("--alpha", type=float, default=0.6, help="exponent of the gnmt penalty")
    parser.add_argument(
        "--keep-unk",
        action="store_true",
        help="print <unk> instead of copying the most attended source token",
    )


def train_command(args: argparse.Namespace) -> int:
    from rnnkit.checkpoint import RunDir
    from rnnkit.data.tokenize import Vocab
    from rnnkit.models.seq2seq import Seq2Seq, Seq2SeqConfig
    from rnnkit.training import TrainConfig, Trainer, TrainingInterrupted, seed_everything
    from rnnkit.translation import (
        TASK,
        DataConfig,
        TaskConfig,
        TranslationData,
        TranslationTask,
        create_run,
        load_pairs,
    )

    budget = {"max_minutes": args.max_minutes, "epochs": args.epochs, "max_steps": args.max_steps}
    if args.resume:
        run = RunDir.open(args.resume, TASK, require=("config.json", "vocab.json"))
        stored = run.read_json("config.json")
        vocabs = run.read_json("vocab.json")
        data_config = DataConfig(**stored["data"])
        task_config = TaskConfig(**stored["translate"])
        model_config = Seq2SeqConfig(**stored["model"])
        train_dict = stored["train"]
        if any(v is not None for v in budget.values()):  # a new budget for the whole run
            train_dict = {**train_dict, **budget}
        train_config = TrainConfig.from_dict(train_dict)
        data = TranslationData(
            load_pairs(data_config),
            data_config,
            vocabs=(Vocab.from_dict(vocabs["source"]), Vocab.from_dict(vocabs["target"])),
        )
    else:
        if all(v is None for v in budget.values()):
            budget["max_minutes"] = DEFAULT_MINUTES
        data_config = DataConfig(
            data=args.data, lang=args.lang, max_len=args.max_len, min_freq=args.min_freq
        )
        task_config = TaskConfig(
            batch_size=args.batch_size,
            teacher_forcing=args.teacher_forcing,
            label_smoothing=args.label_smoothing,
        )
        train_config = TrainConfig(lr=args.lr, eval_every=args.eval_every, seed=args.seed, **budget)
        data = TranslationData(load_pairs(data_config), data_config)
        src_vectors = load_pretrained(args.embeddings)
        tgt_vectors = load_pretrained(args.target_embeddings)
        dims = [v.dim for v in (src_vectors, tgt_vectors) if v is not None]
        model_config = Seq2SeqConfig(
            src_vocab_size=len(data.source_vocab),
            tgt_vocab_size=len(data.target_vocab),
            embedding_dim=args.embedding_dim or (dims[0] if dims else 128),
            hidden_size=args.hidden_size,
            num_layers=args.layers,
            cell=args.cell,
            bidirectional=not args.unidirectional,
            attention=args.attention,
            input_feeding=args.input_feeding,
            dropout=args.dropout,
            pad_index=data.target_vocab.pad_index,
            impl=args.impl,
            freeze_src_embedding=args.freeze_embeddings and src_vectors is not None,
            freeze_tgt_embedding=args.freeze_embeddings and tgt_vectors is not None,
        )
    task = TranslationTask(data, task_config, seed=train_config.seed)  # checks the data
    if not args.resume:  # the run directory is made only once the data is known to be usable
        run = create_run(args.out, model_config, data, task_config, train_config)
    seed_everything(train_config.seed)
    model = Seq2Seq(model_config)
    if not args.resume:  # a resumed run has its (possibly pretrained) weights in the checkpoint
        for name, embedding, vocab, vectors in (
            ("source", model.src_embedding, data.source_vocab, src_vectors),
            ("target", model.tgt_embedding, data.target_vocab, tgt_vectors),
        ):
            if vectors is not None:
                start_embedding(name, embedding, vocab.itos, vectors, freeze=args.freeze_embeddings)
    counts = {name: len(data.examples[name]) for name in ("train", "valid", "test")}
    print(
        f"pairs {counts}; vocabularies {len(data.source_vocab)} source, "
        f"{len(data.target_vocab)} target tokens; "
        f"{sum(p.numel() for p in model.parameters()):,} parameters"
    )
    report = (lambda message: None) if args.quiet else print
    trainer = Trainer(model, task, train_config, run, quiet=args.quiet, report=report)
    try:
        result = trainer.fit(resume=bool(args.resume))
    except TrainingInterrupted as exc:
        print(f"rnnkit: {exc}", file=sys.stderr)
        return 130
    print(
        f"done: {result.steps} steps ({result.epochs_done:.1f} epochs) in "
        f"{result.elapsed_s / 60:.1f} min; best valid loss {result.best_valid_loss:.3f} "
        f"nats/token; run in {run.path}"
    )
    print(f'try: rnnkit translate run {run.path} "Could not read the index."')
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
    from rnnkit.translator import Translator

    translator = Translator.load(args.run_dir)
    texts = _read_texts(args)
    present = [text for text in texts if text.strip()]
    results = iter(translator.translate(present, n_best=args.n_best, **_search_options(args)))
    for text in texts:
        candidates = next(results) if text.strip() else []
        if args.n_best == 1:
            print(candidates[0].text if candidates else "")
        else:
            for rank, candidate in enumerate(candidates, start=1):
                print(f"{rank}\t{candidate.score:.3f}\t{candidate.text}")
            print()
    return 0


def eval_command(args: argparse.Namespace) -> int:
    from rnnkit.translator import Translator

    translator = Translator.load(args.run_dir)
    scores = translator.evaluate(args.split, **_search_options(args))
    if args.json:
        print(json.dumps(scores))
        return 0
    print(
        f"{scores['split']}: {scores['sentences']} sentences, beam {scores['beam_size']}\n"
        f"BLEU  {scores['bleu']:.2f}\n"
        f"chrF  {scores['chrf']:.2f}\n"
        f"placeholders kept  {scores['placeholders_kept']:.1%} of "
        f"{scores['sentences_with_placeholders']} sentences with placeholders "
        f"(references: {scores['placeholders_kept_reference']:.1%})"
    )
    return 0


def attention_command(args: argparse.Namespace) -> int:
    from rnnkit.data.parallel import detokenize
    from rnnkit.translator import Translator, plot_attention

    translator = Translator.load(args.run_dir)
    source, output, weights = translator.attention(args.text, beam_size=args.beam)
    plot_attention(source, output, weights, args.out)
    print(detokenize(output[:-1]))
    print(f"wrote {args.out}")
    return 0
