"""Where greedy and beam captions differ: error kinds of each decoding on saved caption runs.

Decodes a split (validation by default: diagnose there, report test once) of each run with
greedy search, beam search (the beam's most probable caption) and beam search re-ranked by
consensus, and counts, on the pictures with relations, what each caption does:

* **no relation**: it relates no two objects (a listing, "a red circle and a blue square", or
  one object only);
* **object wrong**: it states a relation, but an object of it is not in the picture by colour
  and shape (first / second named wrong), or both sides name the same object;
* **direction wrong**: both objects right, the relation points the wrong way;
* **relation right**: both objects right, the relation true.

The four add up to the relation pictures. On the one-object pictures (each a held-out
colour-shape pair) it counts the captions naming the object right, and, where greedy and the
re-ranked beam differ, which of the two names it right. Beside the counts, CIDEr-D x100 (whole
split, one object, relations) and how often the greedy caption is among the beam's finished
captions.

    python benchmarks/caption_diagnose.py RUN_DIR [RUN_DIR ...] [--split valid] [--json out.json]

It also reads the model at the place where greedy search parts the relations from the listings:
after the words naming the leftmost object with its size ("a small red circle"), where the
references go on with the relation ("left of", "above", "below") or with "and" (two objects) /
the next object ("a", three objects) equally often. It reports the model's mean probability of
each continuation there and which one it ranks first (``branch``).

``--variants`` adds two other candidate sets for the consensus re-ranking: the beam's captions
with the greedy caption added (once), and a beam two wider.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import torch

from rnnkit.caption import api, metrics, scenes
from rnnkit.caption.encoders import model_inputs
from rnnkit.search.consensus import rerank

KINDS = ("no relation", "object wrong", "direction wrong", "relation right")


def relation_kind(words: list[str], objects: list[scenes.SceneObject]) -> tuple[str, str | None]:
    """The kind of a relation picture's caption (``KINDS``) and, for "object wrong", which."""
    text = " ".join(words)
    stated = [r for r in scenes.RELATIONS if r in text]
    if not stated:
        return "no relation", None
    named = scenes.relation_named(words, objects)
    if named is None:
        k = text.find(stated[0])
        before, after = text[:k].split(), text[k + len(stated[0]) :].split()
        first = (
            [w for w in before if w in scenes.COLOURS][-1:],
            [w for w in before if w in scenes.SHAPES][-1:],
        )
        second = (
            [w for w in after if w in scenes.COLOURS][:1],
            [w for w in after if w in scenes.SHAPES][:1],
        )
        ok = [any(([o.colour], [o.shape]) == p for o in objects) for p in (first, second)]
        which = "same object twice" if all(ok) else "first" if not ok[0] else "second"
        if not ok[0] and not ok[1]:
            which = "both"
        return "object wrong", which
    rel, x, y = named
    return ("relation right" if scenes.relation(x, y) == rel else "direction wrong"), None


def names_object(words: list[str], obj: scenes.SceneObject) -> bool:
    """Whether a one-object caption names the object's colour followed by its shape."""
    return f" {obj.colour} {obj.shape} " in f" {' '.join(words)} "


def branch(captioner: api.Captioner, inputs: torch.Tensor, objects: list) -> dict:
    """The next word after the leftmost object's phrase (with its size), on relation pictures:
    mean probability of the listing ("and" / "a"), the true relation's first word, and the other
    relation words; and how often each of the three ranks first among all words."""
    model, vocab = captioner.model.eval(), captioner.vocab
    ids = {w: vocab.encode([w])[0] for w in ("and", "a", *scenes.RELATION_WORDS)}
    sums, first = Counter(), Counter()
    rows = [i for i, objs in enumerate(objects) if len(objs) > 1]
    with torch.no_grad():
        for i in rows:
            left, other = sorted(objects[i], key=lambda o: o.centre()[0])[:2]
            true = ids[scenes.relation(left, other).split()[0]]
            state = model.start(inputs[i : i + 1])
            for token in [vocab.bos_index, *vocab.encode(left.phrase().split())]:
                log_probs, state = model.step(torch.tensor([token]), state)
            p = log_probs[0].exp()  # (V,)
            listing = float(p[ids["and"]] + p[ids["a"]])
            wrong = sum(float(p[ids[w]]) for w in scenes.RELATION_WORDS if ids[w] != true)
            sums.update({"listing": listing, "true relation": float(p[true]), "other": wrong})
            top = int(p.argmax())
            kind = ("true relation" if top == true else "listing"
                    if top in (ids["and"], ids["a"]) else "other")  # fmt: skip
            first[kind] += 1
    return {"pictures": len(rows), "mean_p": {k: v / len(rows) for k, v in sums.items()},
            "ranked_first": dict(first)}  # fmt: skip


def diagnose(run: str, split: str, beam: int, variants: bool = False) -> dict:
    captioner = api.load(run)
    data = api._load_splits(captioner.recipe)[split]
    inputs = model_inputs(data.images, captioner.recipe.encoder, cache=True)
    vocab = captioner.vocab
    greedy = [h[0] for h in api.decode(captioner, inputs, beam_size=1)]
    beams = api.decode(captioner, inputs, beam_size=beam, rerank="none", n_best=beam)
    decodings = {
        "greedy": [vocab.decode(h.tokens) for h in greedy],
        f"beam {beam}": [vocab.decode(b[0].tokens) for b in beams],
        f"beam {beam} consensus": [vocab.decode(rerank(b, "consensus")[0].tokens) for b in beams],
    }
    if variants:  # other candidate sets for the consensus re-ranking
        wide = api.decode(captioner, inputs, beam_size=beam + 2, rerank="none", n_best=beam + 2)
        with_greedy = [list({tuple(h.tokens): h for h in [*b, g]}.values())  # once each
                       for b, g in zip(beams, greedy)]  # fmt: skip
        decodings[f"beam {beam} + greedy consensus"] = [
            vocab.decode(rerank(c, "consensus")[0].tokens) for c in with_greedy
        ]
        decodings[f"beam {beam + 2} consensus"] = [
            vocab.decode(rerank(b, "consensus")[0].tokens) for b in wide
        ]
    among = sum(any(h.tokens == g.tokens for h in b) for g, b in zip(greedy, beams))
    relational = [len(objs) > 1 for objs in data.objects]
    result = {"run": run, "split": split, "greedy_among_beam": among, "images": len(greedy)}
    if captioner.recipe.data == scenes.NAME:
        result["branch"] = branch(captioner, inputs, data.objects)
    for name, hyps in decodings.items():
        cider, per_image = metrics.cider_d(hyps, data.captions, per_image=True)
        kinds, wrong = Counter(), Counter()
        one_right = 0
        for words, objs in zip(hyps, data.objects):
            if len(objs) > 1:
                kind, which = relation_kind(words, objs)
                kinds[kind] += 1
                if which:
                    wrong[which] += 1
            else:
                one_right += names_object(words, objs[0])
        rel = [c for c, r in zip(per_image, relational) if r]
        one = [c for c, r in zip(per_image, relational) if not r]
        result[name] = {
            "cider": 100 * cider, "one_cider": 100 * sum(one) / len(one),
            "rel_cider": 100 * sum(rel) / len(rel), "kinds": {k: kinds[k] for k in KINDS},
            "object_wrong": dict(wrong), "one_named_right": one_right,
            "words": sum(len(h) for h in hyps) / len(hyps),
        }  # fmt: skip
    consensus = decodings[f"beam {beam} consensus"]
    swaps = Counter()
    for g, c, objs in zip(decodings["greedy"], consensus, data.objects):
        if len(objs) == 1 and g != c:
            swaps[(names_object(g, objs[0]), names_object(c, objs[0]))] += 1
    result["one_object_differ"] = {
        "greedy right, consensus wrong": swaps[(True, False)],
        "greedy wrong, consensus right": swaps[(False, True)],
        "both right": swaps[(True, True)],
        "both wrong": swaps[(False, False)],
    }
    return result


def print_run(r: dict) -> None:
    relations = sum(r["greedy"]["kinds"].values())
    print(f"\n{r['run']} ({r['split']}, {r['images']} pictures, {relations} with relations; "
          f"greedy caption among the beam's finished: {r['greedy_among_beam']})")  # fmt: skip
    print(
        "| decoding | CIDEr-D | one object | relations | "
        + " | ".join(KINDS)
        + " | object wrong: first/second/both/same | one object named right | words |"
    )
    print("|---" * (7 + len(KINDS)) + "|")
    for name in [k for k in r if isinstance(r[k], dict) and "kinds" in r[k]]:
        s = r[name]
        w = s["object_wrong"]
        wrong = "/".join(str(w.get(k, 0)) for k in ("first", "second", "both", "same object twice"))
        print(f"| {name} | {s['cider']:.1f} | {s['one_cider']:.1f} | {s['rel_cider']:.1f} | "
              + " | ".join(str(s["kinds"][k]) for k in KINDS)
              + f" | {wrong} | {s['one_named_right']} | {s['words']:.2f} |")  # fmt: skip
    if "branch" in r:
        b = r["branch"]
        print(
            f"after the leftmost object's phrase ({b['pictures']} pictures): mean probability "
            + ", ".join(f"{k} {v:.3f}" for k, v in b["mean_p"].items())
            + "; ranked first: "
            + ", ".join(f"{k} {v}" for k, v in b["ranked_first"].items())
        )
    d = r["one_object_differ"]
    print("one-object pictures where greedy and consensus differ: "
          + ", ".join(f"{k} {v}" for k, v in d.items()))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="caption run directories")
    parser.add_argument("--split", default="valid", choices=("valid", "test"))
    parser.add_argument("--beam", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--variants", action="store_true",
        help="also re-rank the beam with the greedy caption added, and a beam 2 wider",
    )  # fmt: skip
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = []
    for run in args.runs:
        start = time.process_time()
        results.append(diagnose(run, args.split, args.beam, args.variants))
        print_run(results[-1])
        print(f"({time.process_time() - start:.1f} CPU-s)", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
