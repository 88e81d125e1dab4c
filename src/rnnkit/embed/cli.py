"""Word embeddings: train word2vec vectors, query them, evaluate them.

  rnnkit embed train --out vectors.txt                    # skip-gram on the Shakespeare corpus
  rnnkit embed train --data my.txt --model cbow --out v.bin --format word2vec-binary
  rnnkit embed similar vectors.txt king -k 10
  rnnkit embed analogy vectors.txt man king woman         # man : king :: woman : ?
  rnnkit embed eval vectors.txt --json       # needs: pip install 'rnnkit[embeddings]'

Vector files may be word2vec text or binary, or GloVe text; the format is detected. The standard
evaluation sets (Google analogies, WordSim-353, SimLex-999) are read from the installed gensim
package's test data.
"""

from __future__ import annotations

import argparse
import json
import sys

from rnnkit.embed.recipe import DEFAULT_DATA, IMPLS, Word2VecConfig
from rnnkit.options import (
    NON_NEGATIVE_NUMBER,
    POSITIVE,
    POSITIVE_NUMBER,
    SEED,
    HelpFormatter,
    add_encoding_argument,
)


def register(parser: argparse.ArgumentParser) -> None:
    """Add ``train``, ``similar``, ``analogy`` and ``eval`` to the ``embed`` group."""
    d = Word2VecConfig()
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = sub.add_parser(
        "train", help="train word vectors (skip-gram or CBOW)", formatter_class=HelpFormatter
    )
    train.add_argument(
        "--data", default=DEFAULT_DATA, help="corpus name or text file (default: %(default)s)"
    )
    add_encoding_argument(train, "--data")
    train.add_argument("--keep-case", action="store_true", help="do not lowercase the text")
    train.add_argument(
        "--out",
        required=True,
        help="vector file to write (atomically); an existing file is replaced only if it is a "
        "vector file, or with --force; never the --data file or a file in a run directory",
    )
    train.add_argument(
        "--force", action="store_true", help="replace --out even if it is not a vector file"
    )
    train.add_argument(
        "--format",
        choices=["word2vec", "word2vec-binary", "glove"],
        default="word2vec",
        help="vector file format",
    )
    train.add_argument(
        "--model",
        choices=["sgns", "cbow"],
        default=d.model,
        help="skip-gram with negative sampling or continuous bag of words",
    )
    train.add_argument(
        "--dim", type=POSITIVE, default=d.dim, help="vector size (default: %(default)s)"
    )
    train.add_argument(
        "--window",
        type=POSITIVE,
        default=d.window,
        help="context half-width (default: %(default)s)",
    )
    train.add_argument(
        "--negative",
        type=POSITIVE,
        default=d.negative,
        help="negative samples (default: %(default)s)",
    )
    train.add_argument(
        "--min-count",
        type=POSITIVE,
        default=d.min_count,
        help="drop rarer words (default: %(default)s)",
    )
    train.add_argument(
        "--sample",
        type=NON_NEGATIVE_NUMBER,
        default=d.sample,
        help="subsampling threshold (default: %(default)s)",
    )
    train.add_argument(
        "--lr",
        type=POSITIVE_NUMBER,
        default=d.lr,
        help="starting learning rate (default: %(default)s)",
    )
    train.add_argument(
        "--epochs",
        type=POSITIVE,
        default=d.epochs,
        help="passes over the text (default: %(default)s)",
    )
    train.add_argument(
        "--impl",
        choices=IMPLS,
        default=d.impl,
        help="training loops: native (C, built on first use), torch, or auto: native if it "
        "builds (default: %(default)s)",
    )
    train.add_argument(
        "--batch-size",
        type=POSITIVE,
        help="centre words per step of --impl torch (default: 128 sgns, 256 cbow)",
    )
    train.add_argument(
        "--workers",
        type=POSITIVE,
        default=d.workers,
        help="training threads (default: %(default)s)",
    )
    train.add_argument("--seed", type=SEED, default=d.seed, help="seed of every random draw")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=run_train)

    similar = sub.add_parser(
        "similar", help="nearest words by cosine similarity", formatter_class=HelpFormatter
    )
    similar.add_argument("vectors", metavar="FILE", help="vector file")
    add_encoding_argument(similar, "the words of a text or binary vector file")
    similar.add_argument("word")
    similar.add_argument(
        "-k", type=POSITIVE, default=10, help="number of answers (default: %(default)s)"
    )
    similar.add_argument("--json", action="store_true", help="print one JSON object")
    similar.set_defaults(func=run_similar)

    analogy = sub.add_parser(
        "analogy", help="A is to B as C is to ?", formatter_class=HelpFormatter
    )
    analogy.add_argument("vectors", metavar="FILE", help="vector file")
    add_encoding_argument(analogy, "the words of a text or binary vector file")
    analogy.add_argument("a")
    analogy.add_argument("b")
    analogy.add_argument("c")
    analogy.add_argument(
        "-k", type=POSITIVE, default=5, help="number of answers (default: %(default)s)"
    )
    analogy.add_argument(
        "--method",
        choices=["3cosadd", "3cosmul"],
        default="3cosadd",
        help="how the analogy is scored (Levy & Goldberg 2014)",
    )
    analogy.add_argument("--json", action="store_true", help="print one JSON object")
    analogy.set_defaults(func=run_analogy)

    ev = sub.add_parser(
        "eval",
        help="analogy accuracy and WordSim-353 / SimLex-999 correlation",
        formatter_class=HelpFormatter,
    )
    ev.add_argument("vectors", metavar="FILE", help="vector file")
    add_encoding_argument(ev, "the words of a text or binary vector file")
    ev.add_argument(
        "--method",
        choices=["3cosadd", "3cosmul"],
        default="3cosadd",
        help="how the analogy is scored (Levy & Goldberg 2014)",
    )
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.set_defaults(func=run_eval)


def run_train(args: argparse.Namespace) -> int:
    from rnnkit.embed import api

    config = Word2VecConfig(
        model=args.model, dim=args.dim, window=args.window, negative=args.negative,
        min_count=args.min_count, sample=args.sample, lr=args.lr, epochs=args.epochs,
        workers=args.workers, seed=args.seed, batch_size=args.batch_size, impl=args.impl,
    )  # fmt: skip
    vectors = api.train(
        args.out, config, data=args.data, encoding=args.encoding, lowercase=not args.keep_case,
        format=args.format, progress=not args.quiet and sys.stdout.isatty(), force=args.force,
    )  # fmt: skip
    print(f"wrote {len(vectors)} vectors of dimension {vectors.dim} to {args.out}")
    return 0


def run_similar(args: argparse.Namespace) -> int:
    from rnnkit.embed import api

    answers = api.similar(api.load(args.vectors, encoding=args.encoding), args.word, args.k)
    _print_answers({"word": args.word}, answers, as_json=args.json)
    return 0


def run_analogy(args: argparse.Namespace) -> int:
    from rnnkit.embed import api

    vectors = api.load(args.vectors, encoding=args.encoding)
    answers = api.analogy(vectors, args.a, args.b, args.c, args.k, method=args.method)
    query = {"a": args.a, "b": args.b, "c": args.c, "method": args.method}
    _print_answers(query, answers, as_json=args.json)
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from rnnkit.embed import api

    result = api.evaluate(api.load(args.vectors, encoding=args.encoding), method=args.method)
    if args.json:
        print(json.dumps(result))
        return 0
    analogy = result["analogy"]
    print(f"word case: {result['case']}; the evaluation compares words lowercased")
    print(f"analogies ({analogy['method']}), accuracy over answered questions:")
    for row in [*analogy["sections"], {**analogy, "name": "overall"}]:
        print(
            f"  {row['name']:<30} {row['accuracy']:7.2%}  {row['correct']:5d}/{row['answered']:<5d}"
            f"  skipped {row['skipped']}"
        )
    print("  (skipped: a question with a word that has no vector)")
    for name, label in (("wordsim353", "WordSim-353"), ("simlex999", "SimLex-999")):
        r = result[name]
        print(f"{label:<12} Spearman {r['spearman']:.4f} over {r['pairs']} pairs", end="")
        print(f", skipped {r['skipped']}")
    return 0


def _print_answers(query: dict, answers: list[tuple[str, float]], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps({**query, "answers": [{"word": w, "score": s} for w, s in answers]}))
        return
    for word, score in answers:
        print(f"{score:8.4f}  {word}")
