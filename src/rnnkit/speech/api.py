"""Speech recognition from Python: train, load, transcribe, evaluate. The face of
``rnnkit speech``.

Example::

    from rnnkit.speech import api
    from rnnkit.speech.recipe import SpeechRecipe

    api.train("runs/asr", recipe=SpeechRecipe(max_minutes=10))
    asr = api.load("runs/asr")
    for t in asr.transcribe(["a.wav"], beam=8, timestamps=True):
        print(t.text, [(w.text, w.start, w.end) for w in t.words])
    print(api.evaluate("runs/asr", split="flite"))        # WER and CER

A run directory holds, besides the trainer's files, ``config.json``: the recipe, the model and
feature configs, the alphabet and (with global normalisation) the feature statistics.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rnnkit import runs
from rnnkit.errors import ConfigError, DataError, RunDirError
from rnnkit.speech import data as speech_data
from rnnkit.speech.data import Alphabet, Item
from rnnkit.speech.decode import (
    Hypothesis,
    LMFusion,
    Span,
    Words,
    forced_align,
    greedy_decode,
    prefix_beam_search,
)
from rnnkit.speech.features import FeatureConfig, SpecAugment, log_mel, normalize
from rnnkit.speech.longform import SegmentConfig, Stitched, Stitcher, Window, segments
from rnnkit.speech.metrics import cer, wer
from rnnkit.speech.model import AcousticConfig, AcousticModel
from rnnkit.speech.recipe import SCORED_SPLITS, SpeechRecipe
from rnnkit.speech.task import TASK, SpeechTask
from rnnkit.training import Runtime, TrainConfig, TrainResult, config_dict, fit
from rnnkit.training.distributed import place, rank_zero_first, to_device

logger = logging.getLogger(__name__)


def corpus(
    recipe: SpeechRecipe,
    *,
    progress: bool = False,
    with_flite: bool = True,
    report: Callable[[str], None] | None = None,
) -> dict[str, list[Item]]:
    """The utterances of ``recipe``'s corpus per split (synthesized on first use; ``report``
    hears how the synthesis goes)."""
    if recipe.corpus in ("synth-digits", "synth-text"):
        counts = {"train": recipe.train_utterances, "valid": recipe.valid_utterances,
                  "test": recipe.test_utterances}  # fmt: skip
        if recipe.corpus == "synth-digits" and with_flite and recipe.flite_utterances:
            counts["flite"] = counts["flite-valid"] = recipe.flite_utterances
        return speech_data.synth_corpus(recipe.corpus, counts=counts, seed=recipe.corpus_seed,
                                        text_file=recipe.text, encoding=recipe.encoding,
                                        festival_share=recipe.festival_share,
                                        extra_share=recipe.festival_extra_share,
                                        progress=progress, report=report)  # fmt: skip
    return speech_data.user_corpus(recipe.corpus, encoding=recipe.encoding)


SYNTHESIZED = ("synth-digits", "synth-text")


def _with_selection(recipe: SpeechRecipe) -> SpeechRecipe:
    """``recipe`` with enough synthesized validation utterances for its selection (the loss
    still reads the first ``valid_utterances``; the plan's prefix is the same)."""
    if recipe.selection != "wer" or recipe.corpus not in SYNTHESIZED:
        return recipe
    most = max(recipe.valid_utterances, recipe.selection_utterances)
    return dataclasses.replace(recipe, valid_utterances=most)


def check_recipe(recipe: SpeechRecipe) -> None:
    """Raise :class:`ConfigError` if ``recipe``'s model, feature or training settings are
    invalid: before any audio is read or synthesized."""
    AcousticConfig.from_recipe(recipe, 2)
    FeatureConfig(n_mels=recipe.n_mels)
    recipe.train_config()


def train(
    out: str | os.PathLike,
    *,
    recipe: SpeechRecipe | None = None,
    resume: bool = False,
    budget: dict[str, Any] | None = None,
    quiet: bool = True,
    report: Callable[[str], None] | None = None,
    runtime: Runtime | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> TrainResult:
    """Train an acoustic model into the run directory ``out`` (or continue it with ``resume``).

    Args:
        out: the run directory (new or empty; an existing run with ``resume``).
        recipe: data, front end, model and training settings (a resumed run uses its own).
        resume: continue the run in ``out`` exactly where it stopped.
        budget: on resume, new values for ``epochs``/``max_steps``/``max_minutes``.
        quiet: no progress bars.
        report: receives one-line progress messages.
        runtime: device, precision (see docs/distributed.md); under torchrun every rank calls
            this with the same arguments (rank 0 synthesizes the corpus, the others read it).
        clock: the seconds counter of the time budget (``time.process_time``: CPU time, for
            comparisons on a busy machine).
    """
    if resume:
        run, config = runs.resume(out, TASK, budget)
        recipe = runs.build(run, config, "recipe", SpeechRecipe.from_dict)
        model_config = runs.build(run, config, "model", AcousticConfig.from_dict)
        train_config = runs.build(run, config, "train", TrainConfig.from_dict)
        features = runs.build(run, config, "features", FeatureConfig.from_dict)
        alphabet = runs.build(run, config, "alphabet", Alphabet)
        stats = runs.build(run, config, "stats", _stats_from_json)
        # (the new budget is written by the trainer once the checkpoint has loaded)
        with rank_zero_first():
            items = corpus(_with_selection(recipe), progress=not quiet, with_flite=False,
                           report=report)  # fmt: skip
    else:
        recipe = recipe or SpeechRecipe()
        check_recipe(recipe)
        train_config = recipe.train_config()
        target = Path(out)
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            runs.RunDir.create(out, TASK)  # raises its one-line error before any work is done
        with rank_zero_first():
            items = corpus(_with_selection(recipe), progress=not quiet, with_flite=False,
                           report=report)  # fmt: skip
        features = FeatureConfig(n_mels=recipe.n_mels)
        alphabet = Alphabet.from_texts([i.text for i in items["train"]])
        stats = feature_stats(items["train"], features) if recipe.normalize == "global" else None
        model_config = AcousticConfig.from_recipe(recipe, len(alphabet))
    selecting = recipe.selection == "wer"
    # Synthesized: the plan's first valid_utterances, and as many more as the selection reads
    # (_with_selection); the loss reads the first valid_utterances of them.
    valid = speech_data.featurize(items["valid"], alphabet, features, stats=stats,
                                  progress=not quiet, what="valid")  # fmt: skip
    splits = {
        "train": speech_data.featurize(
            items["train"], alphabet, features, stats=stats, progress=not quiet, what="train"
        ),  # fmt: skip
        "valid": valid[: recipe.valid_utterances] if recipe.corpus in SYNTHESIZED else valid,
    }
    augment = (
        SpecAugment(
            warp=recipe.vtlp, band_limit=recipe.band_limit, tempo=recipe.tempo, config=features
        )
        if recipe.spec_augment
        else None
    )
    task = SpeechTask(splits, batch_frames=recipe.batch_frames, seed=recipe.seed,
                      augment=augment, ctc_impl=recipe.ctc_impl,
                      selection=valid[: recipe.selection_utterances] if selecting else None,
                      alphabet=alphabet)  # fmt: skip
    if not resume:
        run = runs.start(
            out, TASK, recipe=recipe.to_dict(), model=model_config.to_dict(),
            train=config_dict(train_config), features=features.to_dict(),
            alphabet=alphabet.chars,
            stats=None if stats is None else [stats[0].tolist(), stats[1].tolist()],
            data={s: len(v) for s, v in splits.items()},
        )  # fmt: skip
    return fit(run, task, train_config, lambda: AcousticModel(model_config), resume=resume,
               quiet=quiet, report=report, runtime=runtime, clock=clock)  # fmt: skip


def _stats_from_json(saved: list[list[float]] | None) -> tuple[Tensor, Tensor] | None:
    """The (mean, std) of global normalisation from config.json (None: per utterance)."""
    if saved is None:
        return None
    mean, std = torch.tensor(saved[0]), torch.tensor(saved[1])
    if mean.shape != std.shape or mean.dim() != 1:
        raise ConfigError("stats must be two lists of the same length")
    return mean, std


def feature_stats(
    items: Sequence[Item], features: FeatureConfig, *, limit: int = 500
) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation per mel channel over the frames of (up to ``limit``) items."""
    frames = [speech_data.file_features(i.path, features) for i in items[:limit]]
    joined = torch.cat(frames)
    return joined.mean(0), joined.std(0, unbiased=False)


def tidy(text: str) -> str:
    """Single spaces, none at the ends."""
    return " ".join(text.split())


@dataclass
class Transcript:
    """The recognised text of one audio file."""

    path: str
    text: str
    seconds: float  # the audio's duration
    words: list[Span] = field(default_factory=list)  # with --timestamps: start/end in seconds
    nbest: list[tuple[str, float]] = field(default_factory=list)  # (text, score), best first

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "text": self.text,
            "seconds": round(self.seconds, 3),
            "words": [{"word": w.text, "start": w.start, "end": w.end} for w in self.words],
            "nbest": [{"text": t, "score": round(s, 4)} for t, s in self.nbest],
        }


@dataclass
class Block:
    """One segment of a recording with its features and CTC posteriors."""

    start: float  # seconds: its first sample in the file
    end: float  # seconds: just after its last sample
    overlap: float  # seconds shared with the previous block (0: cut at a pause)
    feats: Tensor  # (T, n_mels) normalised log-mel features
    log_probs: Tensor  # (T', C) per-step log-probabilities


class Recognizer:
    """A trained acoustic model with its alphabet and front end (from :func:`load`)."""

    def __init__(
        self,
        model: AcousticModel,
        alphabet: Alphabet,
        features: FeatureConfig,
        stats: tuple[Tensor, Tensor] | None,
        config: dict[str, Any],
        *,
        runtime: Runtime | None = None,
    ) -> None:
        self.model = model
        self.place = place(model, runtime)  # the model's device and precision
        self.alphabet = alphabet
        self.features = features
        self.stats = stats
        self.config = config
        self.segmenting = SegmentConfig()  # how long recordings are cut (longform.py)

    @property
    def seconds_per_step(self) -> float:
        """Seconds between the model's output frames."""
        return self.features.frame_seconds * self.model.config.stack

    def featurize(self, wave: Tensor) -> Tensor:
        feats = log_mel(wave, self.features)
        return normalize(feats) if self.stats is None else normalize(feats, *self.stats)

    @torch.no_grad()
    def posteriors(self, feats: Tensor) -> Tensor:
        """(T', C) log-probabilities of one utterance's features (T, n_mels), on the CPU."""
        inputs = to_device((feats.unsqueeze(0), torch.tensor([feats.shape[0]])), self.place.device)
        with self.place.autocast():
            log_probs, _ = self.model(*inputs)
        return log_probs[:, 0].float().cpu()

    def blocks(self, path: str | os.PathLike) -> Iterator[Block]:
        """The file's segments (one for a short file) with their features and posteriors, one
        segment in memory at a time (see :mod:`rnnkit.speech.longform`)."""
        rate = self.features.sample_rate
        for index, seg in enumerate(segments(path, sample_rate=rate, config=self.segmenting)):
            if index and seg.wave.shape[0] < self.features.n_fft:
                continue  # a sliver at the end of a long file
            try:
                feats = self.featurize(seg.wave)
            except DataError as exc:
                raise DataError(f"{path}: {exc}") from None
            yield Block(seg.start / rate, (seg.start + seg.wave.shape[0]) / rate,
                        seg.overlap / rate, feats, self.posteriors(feats))  # fmt: skip

    def recognize(
        self,
        path: str | os.PathLike,
        decoders: Sequence[Callable[[Tensor], list[Hypothesis]]],
        *,
        nbest: int = 1,
        timestamps: bool = False,
    ) -> tuple[float, list[Stitched]]:
        """``(seconds, one transcript per decoder)`` of one file: each segment's posteriors are
        decoded by every decoder and the segments stitched (:class:`longform.Stitcher`)."""
        stitchers = [Stitcher(nbest=nbest, timestamps=timestamps) for _ in decoders]
        seconds = 0.0
        for block in self.blocks(path):
            for decode, stitcher in zip(decoders, stitchers):
                hyps = [(self.alphabet.decode(h.tokens), h.score) for h in decode(block.log_probs)]
                stitcher.add(Window(block.start, block.end, block.overlap, hyps,
                                    self._aligner(block)))  # fmt: skip
            seconds = block.end
        return seconds, [s.finish() for s in stitchers]

    def _aligner(self, block: Block) -> Callable[[str], list[tuple[float, float]]]:
        """The (start, end) seconds in the file of each character of a text, by the Viterbi
        alignment to the block's posteriors."""
        step = self.seconds_per_step

        def align(text: str) -> list[tuple[float, float]]:
            spans = forced_align(block.log_probs, self.alphabet.encode(text))
            return [(block.start + s * step, block.start + e * step) for s, e in spans]

        return align

    def transcribe(
        self,
        paths: Sequence[str | os.PathLike],
        *,
        beam: int = 1,
        nbest: int = 1,
        lm: LMFusion | None = None,
        alpha: float = 0.5,
        beta: float = 1.0,
        hotwords: Sequence[str] = (),
        hotword_weight: float = 2.0,
        lexicon: Sequence[str] | None = None,
        timestamps: bool = False,
    ) -> list[Transcript]:
        """Transcribe audio files (long files segment by segment, in bounded memory).

        ``beam=1`` without an LM or hotwords is greedy decoding; anything else runs the prefix
        beam search (see :func:`rnnkit.speech.decode.prefix_beam_search`), ``nbest`` > 1 with
        a beam at least that wide. A long file's n-best are the ``nbest`` best sums of its
        segments' hypotheses.
        """
        if beam < 1 or nbest < 1:
            raise ConfigError(f"beam and nbest must be >= 1, got {beam} and {nbest}")
        words = self.words(hotwords, lexicon, hotword_weight)
        beam = max(beam, nbest)

        def decode(log_probs: Tensor) -> list[Hypothesis]:
            return self.decode(log_probs, beam=beam, nbest=nbest, lm=lm, alpha=alpha, beta=beta,
                               words=words)  # fmt: skip

        results = []
        for path in paths:
            seconds, (out,) = self.recognize(path, [decode], nbest=nbest, timestamps=timestamps)
            results.append(Transcript(str(path), out.text, seconds, out.words, out.nbest))
        return results

    def words(
        self, hotwords: Sequence[str] = (), lexicon: Sequence[str] | None = None,
        weight: float = 2.0,
    ) -> Words | None:  # fmt: skip
        """The word rules of a search (None when there are none). Words are normalised as
        transcripts are (:func:`rnnkit.speech.data.normalize_text`: "Don’t" is "don't")."""
        if not hotwords and lexicon is None:
            return None
        hotwords = [speech_data.normalize_text(w) for w in hotwords]
        if lexicon is not None:
            lexicon = [speech_data.normalize_text(w) for w in lexicon]
        for word in [*hotwords, *(lexicon or ())]:
            self.alphabet.encode(word, where=f"the word {word!r}")
        return Words(self.alphabet.symbols, hotwords=hotwords, lexicon=lexicon, weight=weight)

    def text(self, tokens: Sequence[int]) -> str:
        """The transcript of class ids, spaces tidied."""
        return tidy(self.alphabet.decode(tokens))

    def decode(
        self,
        log_probs: Tensor,
        *,
        beam: int = 1,
        nbest: int = 1,
        lm: LMFusion | None = None,
        alpha: float = 0.5,
        beta: float = 1.0,
        words: Words | None = None,
    ) -> list[Hypothesis]:
        if beam == 1 and lm is None and words is None:
            return [greedy_decode(log_probs)]
        return prefix_beam_search(log_probs, beam=beam, nbest=nbest, lm=lm, alpha=alpha,
                                  beta=beta if lm is not None else 0.0, words=words)  # fmt: skip


def load(
    run_dir: str | os.PathLike, *, weights: str = runs.BEST, runtime: Runtime | None = None
) -> Recognizer:
    """The trained recognizer of ``run_dir`` (best validation weights); its model on
    ``runtime``'s device (default: the CPU)."""
    run, config = runs.load(run_dir, TASK, weights=weights)
    model = AcousticModel(runs.build(run, config, "model", AcousticConfig.from_dict))
    features = runs.build(run, config, "features", FeatureConfig.from_dict)
    alphabet = runs.build(run, config, "alphabet", Alphabet)
    stats = runs.build(run, config, "stats", _stats_from_json)
    runs.load_model_weights(run, model, weights)
    model.eval()
    return Recognizer(model, alphabet, features, stats, config, runtime=runtime)


def load_lm(run_dir: str | os.PathLike, alphabet: Alphabet) -> LMFusion:
    """A character language model trained by ``rnnkit lm train``, for shallow fusion.

    Each acoustic character is scored by the LM's token for it (or its upper-case form when the
    LM only knows that); the LM reads a newline before each utterance and scores one after it.
    """
    from rnnkit.lm.api import load as load_language_model

    lm = load_language_model(run_dir)
    if lm.tokenizer.level != "char":
        raise RunDirError(f"{run_dir} is a word-level language model; fusion needs --level char")
    stoi = lm.vocab.stoi
    token_of = [None] + [stoi.get(c, stoi.get(c.upper())) for c in alphabet.chars]
    start = stoi.get("\n", stoi.get(" ", 0))
    end = stoi.get("\n")
    missing = [c for c, t in zip(alphabet.chars, token_of[1:]) if t is None]
    if missing:
        logger.warning("the LM does not know %r; those characters get no LM score", missing)
    return LMFusion(lm.model, token_of, start, end)


def evaluate(
    run_dir: str | os.PathLike,
    *,
    split: str = "test",
    data: str | None = None,
    encoding: str = "utf-8",
    beam: int = 8,
    lm: str | None = None,
    alpha: float = 0.5,
    beta: float = 1.0,
    lexicon: Sequence[str] | None = None,
    limit: int | None = None,
    progress: bool = False,
    runtime: Runtime | None = None,
) -> dict[str, Any]:
    """WER and CER of a run, greedy and with the beam search (and LM), on a split.

    Args:
        split: ``"valid"``, ``"test"``, ``"flite"`` or ``"flite-valid"`` (synth-digits runs:
            flite's voices, other utterances than its test set's, for choosing a recipe).
        data: a transcript TSV or LibriSpeech folder to score instead (all of it).
        encoding: the text encoding of ``data``'s transcripts.
        beam: beam width of the second decoder (1: greedy only).
        lm: a character LM run directory for shallow fusion.
        lexicon: the beam search may only output these words.
        limit: score only the first N utterances.
        runtime: the device and precision of the acoustic model (default: the CPU, fp32).
    """
    if split not in SCORED_SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SCORED_SPLITS)}, got {split!r}")
    asr = load(run_dir, runtime=runtime)
    recipe = SpeechRecipe.from_dict(asr.config["recipe"])
    if data is not None:
        parts = speech_data.user_corpus(data, encoding=encoding).values()
        items = [i for part in parts for i in part]
        items = list(dict.fromkeys(items))
    else:
        if split.startswith("flite") and recipe.corpus != "synth-digits":
            raise DataError(f"the flite sets exist for synth-digits runs; {run_dir} was "
                            f"trained on {recipe.corpus}")  # fmt: skip
        items = corpus(recipe, progress=progress)[split]
    items = items[:limit] if limit else items
    fusion = load_lm(lm, asr.alphabet) if lm else None
    words = asr.words(lexicon=lexicon)
    searching = beam > 1 or fusion is not None or words is not None
    decoders = [lambda log_probs: [greedy_decode(log_probs)]]
    if searching:
        decoders.append(lambda log_probs: asr.decode(log_probs, beam=beam, lm=fusion, alpha=alpha,
                                                     beta=beta, words=words))  # fmt: skip
    refs, greedy_out, beam_out = [], [], []
    from tqdm import tqdm

    for item in tqdm(items, disable=not progress, unit="utt", desc=f"eval {split}"):
        asr.alphabet.encode(item.text, where=f"the transcript of {item.path}")
        refs.append(item.text)
        _, outs = asr.recognize(item.path, decoders)
        greedy_out.append(outs[0].text)
        beam_out.append(outs[-1].text)
    result: dict[str, Any] = {
        "run": os.fspath(run_dir),
        "split": "data" if data else split,
        "utterances": len(refs),
        "greedy": {"wer": wer(refs, greedy_out), "cer": cer(refs, greedy_out)},
    }
    if searching:
        result["beam"] = {"width": beam, "lm": lm, "alpha": alpha, "beta": beta,
                          "lexicon": lexicon is not None,
                          "wer": wer(refs, beam_out), "cer": cer(refs, beam_out)}  # fmt: skip
    result["examples"] = [{"ref": r, "greedy": g} for r, g in list(zip(refs, greedy_out))[:5]]
    return result


@dataclass
class Alignment:
    """What the model heard in one audio file and where it put each character: the picture of
    ``rnnkit speech transcribe --plot`` as data (from :func:`align`).

    The features and posteriors cover the file's first segment (all of a short file; see
    :meth:`Recognizer.blocks`); the transcript is of the whole file.
    """

    transcript: Transcript  # Recognizer.transcribe's, with word timings and the n-best list
    features: Tensor  # (T, n_mels) the normalised log-mel features the model read
    frame_seconds: float  # seconds between feature frames
    posteriors: Tensor  # (T', C) probability of each class per output frame; class 0 is the blank
    step_seconds: float  # seconds between output frames
    symbols: list[str]  # the text of each class ('' for the blank)
    characters: list[Span]  # the best hypothesis's characters: output frames [start, end)
    whole: bool  # whether the features and posteriors cover the whole file


def align(asr: Recognizer, path: str | os.PathLike, *, beam: int = 1, nbest: int = 1) -> Alignment:
    """Transcribe ``path`` and return what the decoding saw (see :class:`Alignment`).

    The characters are those of the best hypothesis of the first segment (greedy decoding with
    ``beam=1``, else the prefix beam search), placed at the frames of the most probable CTC
    alignment (:func:`~rnnkit.speech.decode.forced_align`), as the word timings are.
    """
    transcript = asr.transcribe([path], beam=beam, nbest=nbest, timestamps=True)[0]
    blocks = asr.blocks(path)
    first = next(blocks)
    feats, log_probs = first.feats, first.log_probs
    whole = next(blocks, None) is None
    tokens = asr.decode(log_probs, beam=beam, nbest=nbest)[0].tokens
    spans = forced_align(log_probs, tokens) if tokens else []
    symbols = asr.alphabet.symbols
    return Alignment(
        transcript, feats, asr.features.frame_seconds, log_probs.exp(), asr.seconds_per_step,
        symbols, [Span(symbols[k], s, e) for k, (s, e) in zip(tokens, spans)], whole,
    )  # fmt: skip
