"""Translation end to end: train, load, translate, evaluate, show attention. The Python API that
``rnnkit translate``, ``benchmarks/translate.py`` and the docs call.

Example::

    from rnnkit import translate
    from rnnkit.translate import TranslateRecipe

    translate.train("runs/fr", recipe=TranslateRecipe(max_minutes=5))
    translator = translate.load("runs/fr")
    best = translate.translate(translator, ["Cannot open '%s'."], beam_size=5)[0][0]
    print(best.text, best.score)
    print(translate.evaluate(translator, "test", beam_size=5))   # {"bleu": ..., "chrf": ...}

A run directory (see :mod:`rnnkit.runs`) holds ``config.json`` (``{"recipe": TranslateRecipe,
"model": Seq2SeqConfig, "train": TrainConfig}``) and ``vocab.json`` (``{"source", "target"}``).
Decoding goes through :func:`rnnkit.search.decode` (greedy or beam search, n-best, length
penalty); the model is only seen through its ``step``/``reorder`` contract there.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from rnnkit import runs, search
from rnnkit.data.tokenize import EOS, Vocab
from rnnkit.embed.vectors import WordVectors
from rnnkit.errors import ConfigError, DataError
from rnnkit.training import Runtime, TrainConfig, TrainResult, config_dict, fit
from rnnkit.training.distributed import place, to_device
from rnnkit.translate.data import SPLITS, TranslationData, load_pairs
from rnnkit.translate.metrics import corpus_scores
from rnnkit.translate.model import Seq2Seq, Seq2SeqConfig
from rnnkit.translate.recipe import TranslateRecipe
from rnnkit.translate.task import TASK, TranslationTask
from rnnkit.translate.tokens import detokenize, tokenize

logger = logging.getLogger(__name__)

DECODE_BATCH = 64  # sentences decoded together


@dataclass(frozen=True)
class Translation:
    """One candidate translation."""

    text: str  # the detokenised translation
    tokens: list[str]  # its tokens (without BOS/EOS)
    score: float  # search score: log-probability, after the length penalty if any


class Translator:
    """A ``Seq2Seq`` model with its vocabularies, ready to translate.

    Args:
        model: the trained model (put in eval mode).
        source_vocab, target_vocab: the vocabularies it was trained with.
        recipe: the run's recipe (corpus, target language and lengths, for ``evaluate``).
        runtime: the device and precision to decode with (default: the CPU, fp32).
    """

    def __init__(
        self, model: Seq2Seq, source_vocab: Vocab, target_vocab: Vocab, recipe: TranslateRecipe,
        *, runtime: Runtime | None = None,
    ) -> None:  # fmt: skip
        self.model = model.eval()
        self.place = place(self.model, runtime)
        self.source_vocab, self.target_vocab = source_vocab, target_vocab
        self.recipe = recipe

    @classmethod
    def load(cls, path: str | Path, *, runtime: Runtime | None = None) -> Translator:
        """Load the best weights of the translation run in ``path`` (onto ``runtime``'s device).

        Raises:
            RunDirError: not a run directory, a run of another task, or an incomplete run.
        """
        run, config = runs.load(path, TASK, require=[runs.VOCAB])
        model = Seq2Seq(runs.build(run, config, "model", Seq2SeqConfig.from_dict))
        recipe = runs.build(run, config, "recipe", TranslateRecipe.from_dict)
        runs.load_model_weights(run, model)
        source, target = read_vocabs(run)
        runs.check_vocab_size(run, runs.VOCAB, len(source), model.config.src_vocab_size)
        runs.check_vocab_size(run, runs.VOCAB, len(target), model.config.tgt_vocab_size)
        return cls(model, source, target, recipe, runtime=runtime)

    # -- encoding ----------------------------------------------------------------------------

    def encode(self, texts: Sequence[str], *, allow_unknown: bool = False) -> tuple[Tensor, Tensor]:
        """Padded source ids ``(N, S)`` and lengths ``(N,)`` of ``texts``.

        Raises:
            DataError: a text is empty, or has no token the model knows (unless ``allow_unknown``).
        """
        ids = []
        for text in texts:
            tokens = tokenize(text)
            if not tokens:
                raise DataError("cannot translate an empty text; give some words")
            encoded = self.source_vocab.encode(tokens)
            if not allow_unknown and all(i == self.source_vocab.unk_index for i in encoded):
                raise DataError(
                    f"no token of {text[:60]!r} is in the model's source vocabulary; "
                    "give text in the language it was trained on"
                )
            ids.append(encoded)
        lengths = torch.tensor([len(i) for i in ids])
        src = torch.full((len(ids), int(lengths.max())), self.source_vocab.pad_index)
        for row, encoded in enumerate(ids):
            src[row, : len(encoded)] = torch.tensor(encoded)
        return src, lengths

    def problem(self, text: str) -> str | None:
        """Why ``text`` cannot be translated (empty, or no token the model knows), or None."""
        try:
            self.encode([text])
        except DataError as exc:
            return str(exc)
        return None

    # -- translating -------------------------------------------------------------------------

    @torch.no_grad()
    def translate(
        self,
        texts: Sequence[str],
        *,
        replace_unknown: bool = True,
        allow_unknown: bool = False,
        **options: Any,
    ) -> list[list[Translation]]:
        """Translate ``texts``: for each, up to ``n_best`` candidates, best first.

        ``options`` are :class:`rnnkit.search.SearchOptions` fields: ``beam_size`` (1: greedy
        search), ``n_best``, ``length_penalty`` (``"none"``, ``"average"``, ``"gnmt"`` with
        exponent ``alpha``) to rank beam hypotheses of different lengths.
        With ``replace_unknown`` (and attention), an output ``<unk>`` is replaced by the source
        token the decoder attended to most when writing it (Luong et al. 2015, "unk replace"),
        which copies names, options and rare placeholders. A text with no known token raises
        ``DataError`` unless ``allow_unknown``.
        """
        settings = search.SearchOptions(**options)
        results: list[list[Translation]] = []
        device = self.place.device
        bos, eos = self.target_vocab.bos_index, self.target_vocab.eos_index
        for start in range(0, len(texts), DECODE_BATCH):
            batch = texts[start : start + DECODE_BATCH]
            src, lengths = to_device(self.encode(batch, allow_unknown=allow_unknown), device)
            bos_tokens = torch.full((src.size(0),), bos, dtype=torch.long, device=device)
            # Room for a translation twice as long as its source, within the training lengths.
            max_length = min(2 * src.size(1) + 10, 2 * self.recipe.max_len)
            with self.place.autocast():
                state = self.model.start(src, lengths)
                found = search.decode(self.model, state, bos_tokens, eos, max_length, settings)
            tokens = [[self.target_vocab.decode(h.tokens) for h in row] for row in found]
            if replace_unknown and self.model.attention is not None:
                self._replace_unknown(tokens, found, batch, src, lengths)
            for row, row_tokens in zip(found, tokens):
                results.append(
                    [Translation(detokenize(t), t, h.score) for h, t in zip(row, row_tokens)]
                )
        return results

    def _replace_unknown(
        self,
        tokens: list[list[list[str]]],
        found: list[list[search.Hypothesis]],
        texts: Sequence[str],
        src: Tensor,
        lengths: Tensor,
    ) -> None:
        """Replace, in place, each ``<unk>`` of ``tokens`` by its most attended source token."""
        unk = self.target_vocab.unk_index
        wanted = [
            (b, k) for b, row in enumerate(found) for k, h in enumerate(row) if unk in h.tokens
        ]
        if not wanted:
            return
        rows = torch.tensor([b for b, _ in wanted], device=src.device)
        width = max(len(found[b][k].tokens) for b, k in wanted)
        tgt_in = torch.full((len(wanted), width), self.target_vocab.pad_index)
        for i, (b, k) in enumerate(wanted):
            ids = [self.target_vocab.bos_index, *found[b][k].tokens][:width]
            tgt_in[i, : len(ids)] = torch.tensor(ids)
        weights = self._align(src[rows], lengths[rows], tgt_in)  # (n, T, S)
        for i, (b, k) in enumerate(wanted):
            source = tokenize(texts[b])
            for t, token_id in enumerate(found[b][k].tokens):
                if token_id == unk:
                    tokens[b][k][t] = source[int(weights[i, t].argmax())]

    @torch.no_grad()
    def attention(self, text: str, *, beam_size: int = 1) -> tuple[list[str], list[str], Tensor]:
        """The best translation of ``text`` and the attention the decoder paid while writing it.

        Returns:
            source tokens, output tokens (ending with ``<eos>``), and the weights
            ``(len(output), len(source))``: row ``t`` is the attention when writing token ``t``.
        """
        if self.model.attention is None:
            raise ConfigError("this model was trained with --attention none; it has no attention")
        best = self.translate([text], beam_size=beam_size, replace_unknown=False)[0][0]
        return tokenize(text), [*best.tokens, EOS], self.alignment(text, best.tokens)

    @torch.no_grad()
    def alignment(self, text: str, tokens: Sequence[str]) -> Tensor:
        """The attention ``(len(tokens) + 1, len(source))`` the decoder pays to ``text`` while
        writing ``tokens`` and then ``<eos>`` (tokens outside the vocabulary read as ``<unk>``)."""
        if self.model.attention is None:
            raise ConfigError("this model was trained with --attention none; it has no attention")
        src, lengths = self.encode([text])
        vocab = self.target_vocab
        tgt_in = torch.tensor([[vocab.bos_index, *vocab.encode(list(tokens))]])
        return self._align(src, lengths, tgt_in)[0]  # (T + 1, S)

    def _align(self, src: Tensor, lengths: Tensor, tgt_in: Tensor) -> Tensor:
        """The model's attention ``(N, T, S)`` on its device, returned as float32 on the CPU."""
        inputs = to_device((src, lengths, tgt_in), self.place.device)
        with self.place.autocast():
            return self.model.align(*inputs).float().cpu()

    # -- evaluating --------------------------------------------------------------------------

    def evaluate(
        self, split: str = "test", *, replace_unknown: bool = True, **options: Any
    ) -> dict[str, Any]:
        """BLEU and chrF (sacrebleu) on a split of the run's corpus, and placeholder fidelity.

        Pairs with a side longer than the run's ``max_len`` are left out, as in training.
        ``options`` are those of ``translate`` (``beam_size``, ``length_penalty``, ...).
        ``placeholders_kept`` is the share of the split's sentences with printf placeholders
        whose placeholders all appear in the output (as a multiset, ignoring argument positions
        and quotes); ``placeholders_kept_reference`` is the same share for the references.
        """
        data = read_data(self.recipe, vocabs=(self.source_vocab, self.target_vocab))
        if split not in SPLITS:
            raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        pairs = data.texts[split]
        if not pairs:
            raise DataError(f"the {split} split of the run's corpus is empty")
        sources = [s for s, _ in pairs]
        references = [t for _, t in pairs]
        outputs = [
            candidates[0].text
            for candidates in self.translate(
                sources, allow_unknown=True, replace_unknown=replace_unknown, **options
            )
        ]
        return {
            "split": split,
            "sentences": len(pairs),
            "beam_size": search.SearchOptions(**options).beam_size,
            "replace_unknown": replace_unknown,
            **corpus_scores(sources, outputs, references, lang=self.recipe.lang),
        }


# ---------------------------------------------------------------------------------------------
# The API: train, load, translate, evaluate


def read_vocabs(run: runs.RunDir) -> tuple[Vocab, Vocab]:
    """The source and target vocabularies of a translation run."""
    vocabs = run.read_json(runs.VOCAB)
    return (
        runs.build(run, vocabs, "source", Vocab.from_dict, name=runs.VOCAB),
        runs.build(run, vocabs, "target", Vocab.from_dict, name=runs.VOCAB),
    )


def read_data(
    recipe: TranslateRecipe, vocabs: tuple[Vocab, Vocab] | None = None
) -> TranslationData:
    """The corpus of ``recipe``, split, tokenised and as ids (vocabularies built unless given)."""
    pairs = load_pairs(recipe.data, recipe.lang, recipe.encoding)
    return TranslationData(pairs, max_len=recipe.max_len, min_freq=recipe.min_freq, vocabs=vocabs)


def check_recipe(recipe: TranslateRecipe) -> None:
    """Raise :class:`ConfigError` if ``recipe``'s model or training settings are invalid."""
    Seq2SeqConfig.from_recipe(recipe, 1, 1)
    recipe.train_config()


def train(
    out: str | os.PathLike,
    *,
    recipe: TranslateRecipe | None = None,
    resume: bool = False,
    budget: dict[str, Any] | None = None,
    quiet: bool = True,
    report: Callable[[str], None] | None = None,
    runtime: Runtime | None = None,
) -> TrainResult:
    """Train a translation model into the run directory ``out`` (or continue it with ``resume``).

    Args:
        out: the run directory (new or empty; an existing run with ``resume``).
        recipe: corpus, model and training settings (ignored when resuming: the run's are used).
        resume: continue the run in ``out`` exactly where it stopped.
        budget: on resume, new values for ``epochs``/``max_steps``/``max_minutes``.
        quiet: no progress bar.
        runtime: device, precision (see docs/distributed.md); under torchrun every rank calls
            this with the same arguments.
        report: receives one-line progress messages (default: the log).
    """
    from rnnkit.embed.api import load_vectors
    from rnnkit.embed.pretrained import start_embedding

    report = report or logger.info
    vectors: list[WordVectors | None] = [None, None]
    if resume:
        run, config = runs.resume(out, TASK, budget)
        recipe = runs.build(run, config, "recipe", TranslateRecipe.from_dict)
        data = read_data(recipe, vocabs=read_vocabs(run))
        train_config = runs.build(run, config, "train", TrainConfig.from_dict)
        model_config = runs.build(run, config, "model", Seq2SeqConfig.from_dict)
    else:
        recipe = recipe or TranslateRecipe()
        data = read_data(recipe)
        vectors = [load_vectors(recipe.embeddings), load_vectors(recipe.target_embeddings)]
        dims = [v.dim for v in vectors if v is not None]
        model_config = Seq2SeqConfig.from_recipe(recipe,
            len(data.source_vocab), len(data.target_vocab),
            pad_index=data.target_vocab.pad_index, vector_dim=dims[0] if dims else None,
        )  # fmt: skip
        train_config = recipe.train_config()
    task = TranslationTask(data, recipe)  # checks the data before the run directory is made
    if not resume:  # (a resumed run's new budget is written by the trainer once it has resumed)
        run = runs.start(
            out, TASK, recipe=asdict(recipe), model=asdict(model_config),
            train=config_dict(train_config),
        )  # fmt: skip
        vocabs = {"source": data.source_vocab.to_dict(), "target": data.target_vocab.to_dict()}
        run.write_json(runs.VOCAB, vocabs)
    counts = {name: len(data.examples[name]) for name in SPLITS}
    report(
        f"pairs {counts}; vocabularies {len(data.source_vocab)} source, "
        f"{len(data.target_vocab)} target tokens"
    )

    def build_model() -> Seq2Seq:
        model = Seq2Seq(model_config)
        sides = (
            ("source", model.src_embedding, data.source_vocab),
            ("target", model.tgt_embedding, data.target_vocab),
        )
        for (name, embedding, vocab), words in zip(sides, vectors):
            if words is not None:  # a resumed run has its pretrained weights in the checkpoint
                freeze = recipe.freeze_embeddings
                start_embedding(name, embedding, vocab.itos, words, freeze=freeze, report=report)
        return model

    return fit(run, task, train_config, build_model, resume=resume, quiet=quiet, report=report,
               runtime=runtime)  # fmt: skip


def load(run_dir: str | os.PathLike, *, runtime: Runtime | None = None) -> Translator:
    """The trained model of ``run_dir`` (best validation weights) with its vocabularies, on
    ``runtime``'s device (default: the CPU)."""
    return Translator.load(run_dir, runtime=runtime)


def translate(
    translator: Translator, texts: Sequence[str], **options: Any
) -> list[list[Translation]]:
    """Translate ``texts`` (see :meth:`Translator.translate` for ``options``)."""
    return translator.translate(texts, **options)


class AttendedTranslation(NamedTuple):
    """A candidate translation with the attention the decoder paid while writing it."""

    translation: Translation
    source: list[str]  # the source tokens (the columns of ``weights``)
    target: list[str]  # the output tokens and ``<eos>`` (the rows of ``weights``)
    weights: Tensor  # (len(target), len(source)); each row sums to 1


def translate_with_attention(
    translator: Translator, text: str, **options: Any
) -> list[AttendedTranslation]:
    """The n-best translations of ``text`` (``options`` as for :meth:`Translator.translate`),
    best first, each with its attention over the source."""
    found = translator.translate([text], **options)[0]
    source = tokenize(text)
    return [
        AttendedTranslation(t, source, [*t.tokens, EOS], translator.alignment(text, t.tokens))
        for t in found
    ]


def evaluate(
    run: Translator | str | os.PathLike, split: str = "test", *,
    runtime: Runtime | None = None, **options: Any,
) -> dict[str, Any]:  # fmt: skip
    """BLEU, chrF and placeholder fidelity of a run (or loaded model) on a split of its corpus
    (see :meth:`Translator.evaluate`), a run directory loaded onto ``runtime``'s device."""
    translator = run if isinstance(run, Translator) else Translator.load(run, runtime=runtime)
    return translator.evaluate(split, **options)
