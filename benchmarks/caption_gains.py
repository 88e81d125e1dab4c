"""Gains of attention runs over the baselines by picture kind, from ``caption.py --json`` rows.

The rows hold CIDEr-D on the whole test split and on its pictures with relations; the one-object
score is derived exactly from them, ``(n x whole - n_rel x relations) / n_one`` (both are means
over pictures). Prints, for each decoding (greedy, the plain beam, the consensus beam), the
attention rows' means +- sd over seeds, the baselines', the gains on relations and on one
object, and each seed's beam against greedy.

    python benchmarks/caption_gains.py --attention a-s0.json a-s1.json --baselines b-s0.json ...
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

DECODINGS = {"greedy": "greedy", "plain": "beam 3, plain", "beam": "beam 3, consensus"}


def rows_of(files: list[str]) -> list[dict]:
    return [row for name in files for row in json.loads(Path(name).read_text())]


def one_object(row: dict, name: str, images: int, relations: int) -> float:
    whole, rel = row[f"{name}_cider"], row[f"{name}_rel_cider"]
    return (images * whole - relations * rel) / (images - relations)


def per_seed(attention: list[dict], rows: list[dict], name: str, n: int, n_rel: int) -> str:
    """The gains seed by seed, for the seeds both decoders have."""
    base = {r["seed"]: r for r in rows}
    pairs = []
    for a in sorted(attention, key=lambda r: r["seed"]):
        b = base.get(a["seed"])
        if b is not None:
            rel = a[f"{name}_rel_cider"] - b[f"{name}_rel_cider"]
            one = one_object(a, name, n, n_rel) - one_object(b, name, n, n_rel)
            pairs.append(f"seed {a['seed']} {rel:+.1f} / {one:+.1f}")
    return ", ".join(pairs)


def spread(values: list[float]) -> str:
    mean = statistics.mean(values)
    return f"{mean:.1f} +- {statistics.stdev(values):.1f}" if len(values) > 1 else f"{mean:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--attention", nargs="+", required=True, help="JSON rows of attention")
    parser.add_argument("--baselines", nargs="+", required=True, help="JSON rows of mean/text")
    parser.add_argument("--images", type=int, default=500, help="pictures in the split")
    parser.add_argument("--relations", type=int, default=321, help="of them, with relations")
    args = parser.parse_args(argv)
    attention = [r for r in rows_of(args.attention) if r["decoder"] == "attention"]
    baselines = rows_of(args.baselines)
    n, n_rel = args.images, args.relations

    def kinds(rows: list[dict], name: str) -> tuple[list[float], list[float], list[float]]:
        whole = [r[f"{name}_cider"] for r in rows]
        rel = [r[f"{name}_rel_cider"] for r in rows]
        return whole, rel, [one_object(r, name, n, n_rel) for r in rows]

    print(
        f"attention seeds {[r['seed'] for r in attention]}, steps {[r['steps'] for r in attention]}"
    )
    for name, label in DECODINGS.items():
        whole, rel, one = kinds(attention, name)
        print(f"  attention, {label}: whole {spread(whole)}, relations {spread(rel)}, "
              f"one object {spread(one)}")  # fmt: skip
    for decoder in ("mean", "text"):
        rows = [r for r in baselines if r["decoder"] == decoder]
        if not rows:  # a baseline not given (e.g. text only not rerun for new seeds)
            continue
        for name in (
            "greedy",
            "plain",
        ):  # the baselines were decoded greedy and with the plain beam
            whole, rel, one = kinds(rows, name)
            print(f"  {decoder}, {DECODINGS[name]}: whole {spread(whole)}, "
                  f"relations {spread(rel)}, one object {spread(one)}")  # fmt: skip
            _, a_rel, a_one = kinds(attention, name)
            gain_rel = statistics.mean(a_rel) - statistics.mean(rel)
            gain_one = statistics.mean(a_one) - statistics.mean(one)
            print(f"    gain of attention over {decoder} ({DECODINGS[name]}): relations "
                  f"{gain_rel:+.1f}, one object {gain_one:+.1f}")  # fmt: skip
            paired = per_seed(attention, rows, name, n, n_rel)
            if paired:
                print(f"    per seed (relations / one object): {paired}")
    for r in attention:
        bleu = " / ".join(f"{r[f'{name}_bleu4']:.1f}" for name in DECODINGS)
        print(f"  seed {r['seed']}: CIDEr-D greedy {r['greedy_cider']:.1f}, plain beam "
              f"{r['plain_cider']:.1f}, consensus beam {r['beam_cider']:.1f}; "
              f"BLEU-4 {bleu}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
