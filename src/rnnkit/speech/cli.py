"""Speech recognition: synthesize a corpus, train a CTC acoustic model, transcribe, evaluate.

  rnnkit speech synth                                   # build the synth-digits corpus (cached)
  rnnkit speech train --out runs/asr --max-minutes 10   # default recipe
  rnnkit speech transcribe runs/asr a.wav b.flac --beam 8 --timestamps
  rnnkit speech transcribe runs/asr a.wav --lm runs/shake --hotword seven --plot a.png
  rnnkit speech eval runs/asr --split flite --beam 8

synth-digits needs espeak-ng, flite and festival with its voices (Debian packages espeak-ng,
flite, festival, festvox-*: see README), or --festival-share 0; your own recordings need none:
--corpus FILE.tsv (path<TAB>text lines) or a LibriSpeech-style folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from typing import Any

from rnnkit.options import (
    BEAM,
    BUDGETS,
    FINITE_NUMBER,
    NON_NEGATIVE_NUMBER,
    POSITIVE,
    PROBABILITY,
    add_budget_arguments,
    add_command,
    add_ema_argument,
    add_encoding_argument,
    add_force_argument,
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
from rnnkit.speech.recipe import SCORED_SPLITS, SELECTIONS, SpeechRecipe

_D = SpeechRecipe()

# Recipe fields that `train` exposes: (field, type, help). Defaults come from SpeechRecipe.
TRAIN_OPTIONS: tuple[tuple[str, Any, str], ...] = (
    ("corpus", str, "synth-digits, synth-text, a transcript TSV or a LibriSpeech folder"),
    ("text", str, "synth-text: the text file to speak (default: Shakespeare)"),
    ("train_utterances", int, "synthesized training utterances"),
    ("valid_utterances", int, "synthesized validation utterances"),
    ("test_utterances", int, "synthesized test utterances"),
    ("flite_utterances", int, "utterances of the flite test set"),
    ("festival_share", PROBABILITY, "synth-digits: share of training spoken by festival voices"),
    ("festival_extra_share", PROBABILITY, "share of those by its HTS, unit-selection voices"),
    ("n_mels", int, "log-mel channels"),
    ("normalize", str, "feature normalisation: utterance or global"),
    ("vtlp", float, "vocal-tract warp factor range in training (0: off)"),
    ("band_limit", float, "probability of a random band limit in training"),
    ("tempo", float, "tempo perturbation range in training (0: off)"),
    ("stack", int, "frames stacked per recurrent step (time subsampling)"),
    ("frontend", str, "time subsampling: stack (frames side by side) or conv (2 convolutions)"),
    ("cell", str, "recurrent layer: lstm or gru"),
    ("hidden_size", int, "units per direction"),
    ("num_layers", int, "bidirectional layers"),
    ("dropout", float, "dropout between layers"),
    (
        "self_condition",
        float,
        "self-conditioned CTC: weight of the first layer's own CTC loss; the layers above read "
        "its predictions (0: off; needs --num-layers 2 or more)",
    ),
    ("impl", str, "recurrent kernels: auto, rnnkit or torch"),
    ("ctc_impl", str, "CTC loss: rnnkit (own forward-backward) or torch (F.ctc_loss)"),
    ("batch_frames", int, "padded feature frames per batch"),
    ("lr", float, "peak learning rate"),
    ("weight_decay", NON_NEGATIVE_NUMBER, "AdamW's decoupled weight decay (0: off)"),
    ("schedule", str, "learning-rate decay over the budget: constant, linear or cosine"),
    ("warmup_steps", int, "linear warm-up steps"),
    (
        "decay_steps",
        int,
        "cap the decay: --decay-floor by this step, however long the budget "
        "(default: no cap, the decay spans the budget)",
    ),
    ("decay_floor", float, "the learning rate held after --decay-steps, as a fraction of --lr"),
    ("clip_norm", float, "gradient-norm clipping"),
    ("eval_every", int, "validate every N steps"),
    ("corpus_seed", int, "seed of the synthesized corpus"),
    ("seed", int, "training seed"),
)


# The user's text files a corpus is read from (what `--encoding` applies to in synth and train).
CORPUS_FILES = "--corpus's transcripts (TSV, *.trans.txt) and --text"


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_recipe_arguments(parser: argparse.ArgumentParser, names: tuple[str, ...]) -> None:
    """The options of the recipe fields ``names``, defaults from :class:`SpeechRecipe`."""
    for name, kind, help_text in TRAIN_OPTIONS:
        if name in names:
            parser.add_argument(_option(name), type=kind, default=getattr(_D, name),
                                help=help_text)  # fmt: skip


def recipe_from_args(args: argparse.Namespace) -> SpeechRecipe:
    """The recipe of a new run: the options given, the defaults elsewhere."""
    names = {f.name for f in fields(SpeechRecipe)} - set(BUDGETS)
    values = {name: getattr(args, name) for name in names if hasattr(args, name)}
    if getattr(args, "no_spec_augment", False):
        values["spec_augment"] = False
    if hasattr(args, "max_minutes"):
        values.update(recipe_budget(args, _D))
    return SpeechRecipe(**values)


def cmd_synth(args: argparse.Namespace) -> int:
    from rnnkit.speech import api

    recipe = recipe_from_args(args)
    items = api.corpus(recipe, progress=not args.quiet and sys.stderr.isatty(),
                       report=reporter(args))  # fmt: skip
    for split, part in items.items():
        print(f"{split:11s} {len(part):6d} utterances")
    if items.get("train"):
        print(f"cached in {items['train'][0].path.rsplit('/', 2)[0]}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from rnnkit.speech import api

    set_threads(args)
    if (code := launched(args)) is not None:
        return code
    resume = args.resume is not None
    out = args.resume or args.out
    recipe = None if resume else recipe_from_args(args)
    report = reporter(args)
    report(f"{'resuming' if resume else 'training'} into {out} ...")
    result = api.train(out, recipe=recipe, resume=resume, budget=resume_changes(args),
                       quiet=args.quiet or not sys.stderr.isatty(), report=report,
                       runtime=runtime_of(args))  # fmt: skip
    line = f"done: {result.steps} steps ({result.epochs_done:.2f} epochs) in "
    line += f"{result.elapsed_s / 60:.1f} min, {result.tokens_per_s:.0f} characters/s"
    if result.best_valid_loss is not None:
        line += f"; best valid CTC loss {result.best_valid_loss:.4f} nats/character"
    print(line)
    print(f"run saved in {out}; try: rnnkit speech eval {out}")
    return 0


def cmd_transcribe(args: argparse.Namespace) -> int:
    from rnnkit.speech import api

    set_threads(args)
    if args.plot:
        from rnnkit.plots import check_image_output

        check_image_output(args.plot, inputs=args.audio, force=args.force, option="--plot")
    asr = api.load(args.run_dir, runtime=runtime_of(args))
    lm = api.load_lm(args.lm, asr.alphabet) if args.lm else None
    results = asr.transcribe(
        args.audio, beam=args.beam, nbest=args.nbest, lm=lm, alpha=args.alpha, beta=args.beta,
        hotwords=args.hotword or (), hotword_weight=args.hotword_weight,
        lexicon=_lexicon(args), timestamps=args.timestamps,
    )  # fmt: skip
    if args.plot:
        from rnnkit.speech.plots import plot_transcription

        plot_transcription(asr, args.audio[0], results[0], args.plot)
    for t in results:
        if args.json:
            print(json.dumps(t.to_dict()))
            continue
        print(f"{t.path}\t{t.text}" if len(results) > 1 else t.text)
        if args.timestamps:
            for w in t.words:
                print(f"  {w.start:7.2f} {w.end:7.2f}  {w.text}")
        for text, score in t.nbest[1:] if args.nbest > 1 else []:
            print(f"  alt {score:9.3f}  {text}")
    if args.plot:
        print(f"plot written to {args.plot}", file=sys.stderr)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from rnnkit.speech import api

    set_threads(args)
    result = api.evaluate(
        args.run_dir, split=args.split, data=args.data, encoding=args.encoding, beam=args.beam,
        lm=args.lm, alpha=args.alpha, beta=args.beta, lexicon=_lexicon(args), limit=args.limit,
        progress=not (args.json or args.quiet) and sys.stderr.isatty(), runtime=runtime_of(args),
    )  # fmt: skip
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['split']}: {result['utterances']} utterances")
    print(f"greedy        WER {result['greedy']['wer']:7.2%}   CER {result['greedy']['cer']:7.2%}")
    if "beam" in result:
        b = result["beam"]
        name = f"beam {b['width']}" + (" + LM" if b["lm"] else "") + (
            " + lexicon" if b["lexicon"] else "")  # fmt: skip
        print(f"{name:13s} WER {b['wer']:7.2%}   CER {b['cer']:7.2%}")
    return 0


def _decoding_arguments(parser: argparse.ArgumentParser, beam: int, files: str) -> None:
    parser.add_argument("--beam", type=BEAM, default=beam, help="beam width (1: greedy)")
    parser.add_argument("--lm", metavar="RUN_DIR", help="character LM (rnnkit lm train) to fuse")
    parser.add_argument("--alpha", type=NON_NEGATIVE_NUMBER, default=0.5, help="LM weight")
    parser.add_argument(
        "--beta", type=FINITE_NUMBER, default=1.0, help="bonus per character with --lm"
    )
    parser.add_argument("--lexicon", metavar="FILE", help="only output the words of FILE")
    add_encoding_argument(parser, files)
    add_process_arguments(parser)
    add_runtime_arguments(parser, launch=False)


def _lexicon(args: argparse.Namespace) -> list[str] | None:
    if args.lexicon is None:
        return None
    from rnnkit.speech.data import read_lexicon

    return read_lexicon(args.lexicon, encoding=args.encoding)


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``speech`` sub-commands to ``parser``; defaults from :class:`SpeechRecipe`."""
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    synth = add_command(commands, "synth", "build or extend a synthesized corpus (cached)",
                        cmd_synth)  # fmt: skip
    add_recipe_arguments(synth, ("corpus", "text", "train_utterances", "valid_utterances",
                                 "test_utterances", "flite_utterances", "festival_share",
                                 "festival_extra_share", "corpus_seed"))  # fmt: skip
    add_encoding_argument(synth, CORPUS_FILES)
    synth.add_argument("--quiet", action="store_true", help="no progress bar")

    train = add_command(commands, "train", "train an acoustic model with CTC into a run directory",
                        cmd_train)  # fmt: skip
    add_run_location(train)
    add_recipe_arguments(train, tuple(name for name, _, _ in TRAIN_OPTIONS))
    add_encoding_argument(train, CORPUS_FILES, default=_D.encoding)
    train.add_argument("--no-spec-augment", action="store_true", help="no augmentation at all")
    add_ema_argument(train, _D.ema)
    train.add_argument(
        "--selection", choices=SELECTIONS, default=_D.selection,
        help="what chooses the weights kept as best (model.safetensors): loss, the CTC loss on "
        "the validation split; wer, the greedy WER of the first --selection-utterances "
        "validation utterances; or last, the weights at the end of the run (the loss is logged "
        "either way)",
    )  # fmt: skip
    train.add_argument(
        "--selection-utterances", type=POSITIVE, default=_D.selection_utterances, metavar="N",
        help="validation utterances transcribed at every validation for --selection wer "
        "(synthesized corpora: the plan's first N, synthesized if --valid-utterances is smaller; "
        "your own corpus: at most its validation split)",
    )  # fmt: skip
    add_budget_arguments(train, _D)
    add_process_arguments(train)
    add_runtime_arguments(train)

    tr = add_command(commands, "transcribe", "audio files to text", cmd_transcribe)
    tr.add_argument("run_dir", metavar="RUN_DIR")
    tr.add_argument("audio", nargs="+", metavar="AUDIO", help="WAV, FLAC or OGG files")
    _decoding_arguments(tr, beam=1, files="--lexicon")
    tr.add_argument("--nbest", type=BEAM, default=1,
                    help="hypotheses to give, best first (a long file: the best sums over its "
                    "segments; the beam is at least this wide)")  # fmt: skip
    tr.add_argument("--hotword", action="append", metavar="WORD", help="boost WORD (repeatable)")
    tr.add_argument("--hotword-weight", type=FINITE_NUMBER, default=2.0, help="bonus per character")
    tr.add_argument("--timestamps", action="store_true", help="word start and end times")
    tr.add_argument("--json", action="store_true", help="one JSON object per file")
    tr.add_argument("--plot", metavar="PNG", help="log-mel, CTC posteriors and alignment")
    add_force_argument(tr)
    tr.set_defaults(trailing="audio")

    ev = add_command(commands, "eval", "WER and CER on a test set", cmd_eval)
    ev.add_argument("run_dir", metavar="RUN_DIR")
    ev.add_argument(
        "--split",
        choices=SCORED_SPLITS,
        default="test",
        help="flite-valid: flite's voices, other utterances than the flite test set",
    )
    ev.add_argument("--data", help="a transcript TSV or LibriSpeech folder to score instead")
    ev.add_argument("--limit", type=POSITIVE, help="only the first N utterances (default: all)")
    _decoding_arguments(ev, beam=8, files="--data's transcripts and --lexicon")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
