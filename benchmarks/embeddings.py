"""rnnkit's word2vec against gensim's Word2Vec: same corpus, same tokens, same hyperparameters.

Trains both, one after the other in one run, and scores both with the same evaluation code
(rnnkit.embed.evaluate, checked against gensim's own evaluation) on the Google analogies,
WordSim-353 and SimLex-999. Speed is raw corpus words per second of the whole training call
(vocabulary building included, for both), as word2vec and gensim count them.

    python benchmarks/embeddings.py                       # skip-gram, Shakespeare, 5 epochs
    python benchmarks/embeddings.py --model cbow
    python benchmarks/embeddings.py --seeds 1 2 3         # mean and range over seeds
    python benchmarks/embeddings.py --max-tokens 200000 --epochs 1   # a quick check
    python benchmarks/embeddings.py --impl torch          # rnnkit's PyTorch steps instead of C

Needs gensim (pip install 'rnnkit[embeddings]').
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from rnnkit.data.datasets import load_corpus
from rnnkit.embed import Word2VecConfig, WordVectors, evaluate_standard, train_word_vectors
from rnnkit.embed.recipe import IMPLS
from rnnkit.embed.train import tokenize_corpus, use_native


def train_gensim(sentences, config: Word2VecConfig):
    from gensim.models import Word2Vec

    model = Word2Vec(
        sentences,
        sg=1 if config.model == "sgns" else 0,
        hs=0,
        cbow_mean=1,
        vector_size=config.dim,
        window=config.window,
        negative=config.negative,
        ns_exponent=0.75,
        min_count=config.min_count,
        sample=config.sample,
        alpha=config.lr,
        min_alpha=config.min_lr,
        epochs=config.epochs,
        workers=config.workers,
        seed=config.seed,
    )
    return WordVectors(list(model.wv.index_to_key), model.wv.vectors)


def timed(train, sentences, config):
    start = time.perf_counter()
    vectors = train(sentences, config)
    return vectors, time.perf_counter() - start


def scores(vectors: WordVectors) -> dict[str, float]:
    """The three headline scores, in points (percent, Spearman x 100)."""
    result = evaluate_standard(vectors)
    return {
        "analogy": 100 * result["analogy"]["accuracy"],
        "wordsim353": 100 * result["wordsim353"]["spearman"],
        "simlex999": 100 * result["simlex999"]["spearman"],
        "answered": result["analogy"]["answered"],
        "pairs": (result["wordsim353"]["pairs"], result["simlex999"]["pairs"]),
    }


def cell(values: list[float]) -> str:
    """Mean of the seeds' values, with their range when there are several."""
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.2f}"
    return f"{mean:.2f} ({min(values):.1f}..{max(values):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="shakespeare", help="corpus name or text file")
    parser.add_argument("--model", choices=["sgns", "cbow"], default="sgns")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--negative", type=int, default=5)
    parser.add_argument("--min-count", type=int, default=5)
    parser.add_argument("--batch-size", type=int, help="rnnkit's centre words per step")
    parser.add_argument("--workers", type=int, default=2, help="threads, for both (default: 2)")
    parser.add_argument(
        "--impl", choices=IMPLS, default="auto", help="rnnkit's training loops (default: auto)"
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[1], help="one run of each per seed"
    )
    parser.add_argument("--max-tokens", type=int, help="train on the first N tokens only")
    parser.add_argument("--check-eval", action="store_true", help="also score with gensim's code")
    args = parser.parse_args()

    sentences = tokenize_corpus(load_corpus(args.data))
    if args.max_tokens:
        tokens = [t for s in sentences for t in s][: args.max_tokens]
        sentences = [tokens[i : i + 10_000] for i in range(0, len(tokens), 10_000)]
    n_tokens = sum(len(s) for s in sentences)
    trainers = {"rnnkit": train_word_vectors, "gensim": train_gensim}
    results = {name: [] for name in trainers}
    seconds = {name: 0.0 for name in trainers}
    load_before = os.getloadavg()[0]
    for i, seed in enumerate(args.seeds):
        config = Word2VecConfig(
            model=args.model, dim=args.dim, window=args.window, negative=args.negative,
            min_count=args.min_count, epochs=args.epochs, workers=args.workers, seed=seed,
            batch_size=args.batch_size, impl=args.impl,
        )  # fmt: skip
        # Alternate which goes first, so a change of machine load hits both alike.
        for name in ("gensim", "rnnkit") if i % 2 == 0 else ("rnnkit", "gensim"):
            vectors, s = timed(trainers[name], sentences, config)
            seconds[name] += s
            results[name].append(scores(vectors))
            if args.check_eval and name == "gensim" and i == 0:
                check_against_gensim(vectors, results[name][0])
    load_after = os.getloadavg()[0]

    print(
        f"corpus {args.data}: {n_tokens:,} tokens, {len(vectors):,} words "
        f"(min_count {args.min_count}); {args.model}, dim {args.dim}, window {args.window}, "
        f"negative {args.negative}, sample {config.sample}, lr {config.lr}, {args.epochs} epochs; "
        f"seeds {args.seeds}"
    )
    loops = "C loops" if use_native(args.impl) else "PyTorch steps, 1 torch thread each"
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cores, load average {load_before:.1f} "
        f"before / {load_after:.1f} after; {args.workers} threads each (gensim workers="
        f"{args.workers}; rnnkit workers={args.workers}, {loops}, torch {torch.__version__})"
    )
    r = results["rnnkit"][0]
    labels = {
        "analogy": f"analogy accuracy, % ({r['answered']} answered)",
        "wordsim353": f"WordSim-353 Spearman x100 ({r['pairs'][0]} pairs)",
        "simlex999": f"SimLex-999 Spearman x100 ({r['pairs'][1]} pairs)",
    }
    print()
    print(f"| {'metric':<38} | {'rnnkit':>20} | {'gensim':>20} | {'rnnkit - gensim':>15} |")
    print(f"|{'-' * 40}|{'-' * 22}|{'-' * 22}|{'-' * 17}|")
    for key, label in labels.items():
        ours = [x[key] for x in results["rnnkit"]]
        theirs = [x[key] for x in results["gensim"]]
        diff = sum(ours) / len(ours) - sum(theirs) / len(theirs)
        print(f"| {label:<38} | {cell(ours):>20} | {cell(theirs):>20} | {diff:+15.2f} |")
    words = n_tokens * args.epochs * len(args.seeds)
    speed = {name: words / seconds[name] for name in trainers}
    ratio = f"ratio {speed['rnnkit'] / speed['gensim']:.2f}"
    print(
        f"| {'training words/s':<38} | {speed['rnnkit']:>20,.0f} | {speed['gensim']:>20,.0f} |"
        f" {ratio:>15} |"
    )


def check_against_gensim(vectors: WordVectors, ours: dict[str, float]) -> None:
    """Score the same vectors with gensim's evaluation code, to check rnnkit's."""
    from gensim.models import KeyedVectors

    from rnnkit.embed import standard_set_path

    kv = KeyedVectors(vectors.dim)
    kv.add_vectors(vectors.words, vectors.vectors)
    analogy = kv.evaluate_word_analogies(standard_set_path("analogy"))[0]
    ws = kv.evaluate_word_pairs(standard_set_path("wordsim353"))[1][0]
    sl = kv.evaluate_word_pairs(standard_set_path("simlex999"))[1][0]
    print(
        f"gensim's own evaluation of the gensim vectors: analogy {100 * analogy:.2f}, "
        f"WordSim-353 {100 * ws:.2f}, SimLex-999 {100 * sl:.2f} (rnnkit's evaluation: "
        f"{ours['analogy']:.2f}, {ours['wordsim353']:.2f}, {ours['simlex999']:.2f})"
    )


if __name__ == "__main__":
    main()
