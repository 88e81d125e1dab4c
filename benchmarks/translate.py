"""Translation quality: no attention vs additive vs general attention; greedy vs beam search.

Trains one model per attention variant on the default corpus (git's message catalog, English ->
--lang) for the same wall-clock budget, then scores the test split with sacrebleu (BLEU, chrF)
decoding greedily and with beam search. Prints one table, a few example translations of the best
model, and writes the attention heat map of one test sentence.

    python benchmarks/translate.py --minutes 4            # about 3 x 4 minutes + decoding
    python benchmarks/translate.py --minutes 0.5 --out /tmp/bench   # a quick smoke run
    python benchmarks/translate.py --out /tmp/bench --reuse          # score those runs again
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

import torch

from rnnkit import runs, translate
from rnnkit.plots import plot_attention
from rnnkit.translate import TranslateRecipe
from rnnkit.translate.api import read_data
from rnnkit.translate.recipe import DEFAULT_EMBEDDING_DIM
from rnnkit.translate.task import TASK
from rnnkit.translate.tokens import JOINER, tokenize

VARIANTS = ("none", "additive", "general")
D = TranslateRecipe()


def recipe_of(attention, args):
    return TranslateRecipe(
        lang=args.lang,
        attention=attention,
        embedding_dim=args.embedding_dim,
        hidden_size=args.hidden_size,
        input_feeding=args.input_feeding,
        batch_size=args.batch_size,
        lr=args.lr,
        eval_every=args.eval_every,
        max_minutes=args.minutes,
        seed=args.seed,
    )


def train_variant(attention, args, out):
    result = translate.train(out / attention, recipe=recipe_of(attention, args))
    return out / attention, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0, help="training time per variant")
    parser.add_argument("--lang", default=D.lang)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=D.batch_size)
    parser.add_argument("--lr", type=float, default=D.lr)
    parser.add_argument("--embedding-dim", type=int, default=DEFAULT_EMBEDDING_DIM)
    parser.add_argument("--hidden-size", type=int, default=D.hidden_size)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument(
        "--input-feeding",
        action="store_true",
        help="attention models with input feeding (training then steps through the target)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="where to keep the runs (default: a temp dir)")
    parser.add_argument("--examples", type=int, default=6, help="test translations to show")
    parser.add_argument(
        "--reuse", action="store_true", help="evaluate the runs already in --out, no training"
    )
    args = parser.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="rnnkit-translate-bench-"))
    data = read_data(recipe_of(VARIANTS[0], args))
    threads = torch.get_num_threads()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch threads {threads}; "
        f"corpus git.mo ({args.lang}): "
        f"{ {name: len(ex) for name, ex in data.examples.items()} } pairs; "
        f"{args.minutes:g} min per variant; input feeding: {args.input_feeding}; "
        f"runs in {out}"
    )
    rows = []
    for attention in VARIANTS:
        if args.reuse:
            path = out / attention
            run, _ = runs.load(path, TASK)
            result = run.read_json(runs.SUMMARY)
            steps, valid = result["step"], result["best_valid_loss"]
        else:
            path, result = train_variant(attention, args, out)
            steps, valid = result.steps, result.best_valid_loss
            print(f"  trained {attention}: {steps} steps, {result.epochs_done:.1f} epochs")
        translator = translate.load(path)
        scores = {
            "greedy": translate.evaluate(translator, "test", beam_size=1),
            "beam": translate.evaluate(translator, "test", beam_size=args.beam),
            "beam, keep unk": translate.evaluate(
                translator, "test", beam_size=args.beam, replace_unknown=False
            ),
        }
        rows.append((attention, steps, valid, scores))

    base = rows[0][3]["greedy"]["bleu"]
    beam = f"beam{args.beam}"
    header = (
        f"{'attention':<10} {'steps':>6} {'valid nll':>9} {'BLEU greedy':>11} "
        f"{f'BLEU {beam}':>11} {'(keep unk)':>10} {'chrF greedy':>11} {f'chrF {beam}':>11} "
        f"{'ph. kept':>8} {'BLEU/none':>9}"
    )
    print()
    print(header)
    print("-" * len(header))
    for attention, steps, valid, scores in rows:
        greedy, beamed, kept = scores["greedy"], scores["beam"], scores["beam, keep unk"]
        ratio = greedy["bleu"] / base if base > 0 else float("nan")
        print(
            f"{attention:<10} {steps:>6} {valid:>9.3f} {greedy['bleu']:>11.2f} "
            f"{beamed['bleu']:>11.2f} {kept['bleu']:>10.2f} {greedy['chrf']:>11.2f} "
            f"{beamed['chrf']:>11.2f} {beamed['placeholders_kept']:>8.1%} {ratio:>9.2f}"
        )
    first = rows[0][3]["greedy"]
    print(
        f"(test: {first['sentences']} sentences; 'ph. kept' with {beam}: share of the "
        f"{first['sentences_with_placeholders']} sentences with placeholders whose placeholders "
        f"all appear in the output; references: {first['placeholders_kept_reference']:.1%}; "
        "unknown outputs are replaced by the most attended source token except in 'keep unk')"
    )

    best = max(rows, key=lambda row: row[3]["beam"]["bleu"])
    translator = translate.load(out / best[0])
    short = [pair for pair in data.pairs["test"] if len(tokenize(pair[0])) <= 15]
    test = short[: args.examples]
    outputs = translate.translate(translator, [s for s, _ in test], beam_size=args.beam)
    print(f"\nexamples ({best[0]} attention, beam {args.beam}):")
    for (source, reference), candidates in zip(test, outputs):
        print(f"  source:    {source!r}\n  output:    {candidates[0].text!r}")
        print(f"  reference: {reference!r}")
    if best[0] != "none":
        sentence = min((s for s, _ in data.pairs["test"] if 6 <= len(s.split()) <= 10), key=len)
        source, output, weights = translator.attention(sentence, beam_size=args.beam)
        labels = [[t.removeprefix(JOINER) for t in tokens] for tokens in (source, output)]
        plot_attention(*labels, weights, out / "attention.png")
        print(f"\nattention heat map of {sentence!r}: {out / 'attention.png'}")


if __name__ == "__main__":
    main()
