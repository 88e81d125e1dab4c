"""Where a speech run's errors come from: utterances it trained on, new utterances of the voices it
trained on, and the held-out validation voices (many more utterances than the trainer's 200).

For each run directory (a synth-digits run), scores with greedy decoding and the CTC loss
(nats/character, no augmentation, the kept weights):

- **seen**: the first ``--utterances`` training utterances (espeak-ng and festival ones);
- **unseen, training voices**: training-plan utterances from index ``--unseen-from`` on, which no
  run of a corpus that small has trained on: the same voices, ranges and share of festival as
  training, new texts and settings. seen vs unseen is what the model learned by heart;
- **valid**: ``--utterances`` validation utterances from plan index ``--valid-from`` (default 0;
  6 espeak-ng variants never heard in training), with the WER of each variant. unseen vs valid
  is the cost of a new voice;
- **flite-valid**: the 300 flite utterances for choosing recipes (flite's voices, other utterances
  than the flite test set), with the WER of each flite voice.

``--weights last|average`` scores the weights of the run's last checkpoint instead of the kept
ones: as trained, or their moving average (a run trained with ``--ema``).

The corpus is extended as needed (synthesized on first use, like any larger corpus: the plan's
prefix is kept). The test sets are never read.

    python benchmarks/speech_gap.py RUN_DIR [RUN_DIR ...] --utterances 1000 --json F
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import sys
from pathlib import Path

import torch

from lm import load  # benchmarks/lm.py: the load line
from rnnkit import runs
from rnnkit.speech import api, synth
from rnnkit.speech.data import Item, collate, featurize, length_batches
from rnnkit.speech.decode import greedy_decode
from rnnkit.speech.metrics import cer, wer
from rnnkit.speech.recipe import SpeechRecipe
from rnnkit.speech.task import EVAL_FRAMES, TASK, SpeechTask
from rnnkit.training.state import unflatten


def posteriors(asr: api.Recognizer, examples: list) -> list[torch.Tensor]:
    """Each featurized example's frame log-probabilities (T', C), in batches of EVAL_FRAMES."""
    out: list[torch.Tensor] = [torch.empty(0)] * len(examples)
    with torch.no_grad():
        for index in length_batches(examples, EVAL_FRAMES):
            batch = collate([examples[i] for i in index])  # longest first, like `chosen`
            chosen = sorted(index, key=lambda i: -examples[i].feats.shape[0])
            log_probs, lengths = asr.model(batch.feats, batch.lengths)  # (T', B, C)
            for b, i in enumerate(chosen):
                out[i] = log_probs[: lengths[b], b]
    return out


def score(asr: api.Recognizer, items: list[Item]) -> dict[str, object]:
    """CTC loss per character and greedy WER/CER of ``items`` (one batched pass)."""
    examples = featurize(items, asr.alphabet, asr.features, stats=asr.stats)
    task = SpeechTask({"train": examples, "x": examples}, batch_frames=EVAL_FRAMES, seed=0,
                      augment=None)  # fmt: skip
    with torch.no_grad():
        loss = task.evaluate(asr.model, "x")
    hyps = [asr.alphabet.decode(greedy_decode(p).tokens) for p in posteriors(asr, examples)]
    refs = [e.text for e in examples]
    return {"n": len(items), "words": sum(len(r.split()) for r in refs), "loss": loss,
            "wer": wer(refs, hyps), "cer": cer(refs, hyps), "refs": refs, "hyps": hyps}  # fmt: skip


def fail(message: str) -> None:
    """One line on stderr, exit status 2 (bad input)."""
    print(f"speech_gap.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def use_weights(asr: api.Recognizer, run: str, which: str) -> None:
    """Put the run's ``which`` weights into ``asr.model``: ``kept`` (model.safetensors, as
    loaded), ``last`` (the weights as trained at the last checkpoint) or ``average`` (the
    moving average at the last checkpoint of a run trained with ``ema``), both from
    last.safetensors."""
    if which == "kept":
        return
    tensors, meta = runs.RunDir.open(run, TASK).load_tensors(runs.CHECKPOINT)
    if which == "last":
        chosen = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    elif "ema" in meta:  # as save_training_state laid it out
        chosen = unflatten(meta["ema"], tensors)["average"]
    else:
        fail(f"{run}: its last checkpoint holds no average (trained without --ema)")
    state = asr.model.state_dict()
    missing = set(state) - set(chosen)  # buffers are not averaged: they stay the kept ones
    asr.model.load_state_dict({**{k: state[k] for k in missing}, **chosen})


def one_run(run: str, args: argparse.Namespace) -> dict[str, object]:
    asr = api.load(run)
    use_weights(asr, run, args.weights)
    recipe = SpeechRecipe.from_dict(asr.config["recipe"])
    if recipe.corpus != "synth-digits":
        fail(f"{run}: trained on {recipe.corpus}; this diagnosis is for synth-digits runs")
    if recipe.train_utterances > args.unseen_from:
        fail(f"{run}: trained on {recipe.train_utterances} utterances, more than "
                 f"--unseen-from {args.unseen_from}")  # fmt: skip
    n = args.utterances
    first = args.valid_from
    wide = dataclasses.replace(recipe, train_utterances=args.unseen_from + n,
                               valid_utterances=first + n)  # fmt: skip
    items = api.corpus(wide)
    sets = {"seen": items["train"][:n], "unseen": items["train"][args.unseen_from :],
            "valid": items["valid"][first:], "flite-valid": items["flite-valid"]}  # fmt: skip
    row: dict[str, object] = {"run": run, "train_utterances": recipe.train_utterances,
                              "valid_from": first, "weights": args.weights}  # fmt: skip
    # The WER of each held-out espeak-ng variant, and of each flite voice.
    voice_of = {f"{u.id}.flac": u.voice.split("+")[-1]
                for split, count in (("valid", first + n), ("flite-valid", recipe.flite_utterances))
                for u in synth.plan(split, count, seed=recipe.corpus_seed)}  # fmt: skip
    for name, part in sets.items():
        result = score(asr, part)
        if name in ("valid", "flite-valid"):
            result["variants"] = by_voice(part, result, voice_of)
        del result["refs"], result["hyps"]
        row[name] = result
    return row


def by_voice(part: list[Item], result: dict, voice_of: dict[str, str]) -> dict[str, dict]:
    """Utterances, words, words wrong and WER of each voice of a scored set."""
    by = collections.defaultdict(lambda: ([], []))
    for item, ref, hyp in zip(part, result["refs"], result["hyps"]):
        by[voice_of[Path(item.path).name]][0].append(ref)
        by[voice_of[Path(item.path).name]][1].append(hyp)
    out = {}
    for voice, (refs, hyps) in sorted(by.items()):
        words = sum(len(r.split()) for r in refs)
        out[voice] = {"n": len(refs), "words": words, "wrong": round(wer(refs, hyps) * words),
                      "wer": wer(refs, hyps)}  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR")
    parser.add_argument("--utterances", type=int, default=1000, help="utterances per set")
    parser.add_argument(
        "--unseen-from", type=int, default=30000,
        help="first training-plan index of the unseen set (above every run's corpus)",
    )  # fmt: skip
    parser.add_argument(
        "--valid-from", type=int, default=0,
        help="first validation-plan index of the valid set (1000: utterances that a run with "
        "--selection wer --selection-utterances 1000 did not choose its weights on)",
    )  # fmt: skip
    parser.add_argument(
        "--weights", choices=("kept", "last", "average"), default="kept",
        help="which weights to score: the kept ones (model.safetensors), or from the last "
        "checkpoint the weights as trained or their moving average (a run with --ema)",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    if args.utterances < 1:
        parser.error(f"--utterances must be at least 1, got {args.utterances}")
    if args.valid_from < 0:
        parser.error(f"--valid-from must be at least 0, got {args.valid_from}")
    torch.set_num_threads(args.threads)
    print(f"load average before: {load()}")
    rows = [one_run(run, args) for run in args.runs]
    print(f"load average after: {load()}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    names = ("seen", "unseen", "valid", "flite-valid")
    print(f"\n{'run':40s} {'train':>6} | "
          + " | ".join(f"{name + ' loss':>16} {'WER %':>6}" for name in names)
          + " (words wrong of)")  # fmt: skip
    for row in rows:
        cells = []
        for name in names:
            r = row[name]
            wrong = round(r["wer"] * r["words"])
            cells.append(f"{r['loss']:.4f} {100 * r['wer']:5.2f} ({wrong}/{r['words']})")
        print(f"{row['run'][-40:]:40s} {row['train_utterances']:>6} | " + " | ".join(cells))
    for name, what in (("valid", "variant"), ("flite-valid", "voice")):
        print(f"\n{name} greedy WER % per {what} (words wrong of):")
        for row in rows:
            voices = row[name]["variants"]
            print(f"  {row['run'][-40:]:40s} "
                  + " ".join(f"{v} {100 * x['wer']:.2f} ({x['wrong']}/{x['words']})"
                             for v, x in voices.items()))  # fmt: skip


if __name__ == "__main__":
    main()
