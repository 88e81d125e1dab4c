"""A trained translation model, loaded from its run directory: translate, evaluate, show attention.

Example::

    translator = Translator.load("runs/fr")
    best = translator.translate(["Cannot open '%s'."], beam_size=5)[0][0]
    print(best.text, best.score)
    print(translator.evaluate("test", beam_size=5))   # {"bleu": ..., "chrf": ..., ...}

Decoding goes through ``rnnkit.search`` (greedy or beam search, n-best, length penalty); the model
is only seen through its ``step``/``reorder`` contract there.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rnnkit import search
from rnnkit.checkpoint import RunDir, load_model_weights
from rnnkit.data.parallel import JOINER, detokenize, placeholders, tokenize
from rnnkit.data.tokenize import EOS, Vocab
from rnnkit.errors import DataError
from rnnkit.models.seq2seq import Seq2Seq, Seq2SeqConfig
from rnnkit.translation import TASK, DataConfig, TranslationData, load_pairs

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
        data_config: the run's ``DataConfig`` (corpus and target language, for ``evaluate``).
    """

    def __init__(
        self, model: Seq2Seq, source_vocab: Vocab, target_vocab: Vocab, data_config: DataConfig
    ) -> None:
        self.model = model.eval()
        self.source_vocab, self.target_vocab = source_vocab, target_vocab
        self.data_config = data_config

    @classmethod
    def load(cls, path: str | Path) -> Translator:
        """Load the best weights of the translation run in ``path``.

        Raises:
            RunDirError: not a run directory, a run of another task, or an incomplete run.
        """
        run = RunDir.open(path, TASK, require=("config.json", "vocab.json", "model.safetensors"))
        config = run.read_json("config.json")
        vocabs = run.read_json("vocab.json")
        model = Seq2Seq(Seq2SeqConfig(**config["model"]))
        load_model_weights(run, model)
        source, target = Vocab.from_dict(vocabs["source"]), Vocab.from_dict(vocabs["target"])
        return cls(model, source, target, DataConfig(**config["data"]))

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

    # -- translating -------------------------------------------------------------------------

    @torch.no_grad()
    def translate(
        self,
        texts: Sequence[str],
        *,
        beam_size: int = 1,
        n_best: int = 1,
        length_penalty: str = "none",
        alpha: float = 0.6,
        replace_unknown: bool = True,
        allow_unknown: bool = False,
    ) -> list[list[Translation]]:
        """Translate ``texts``: for each, up to ``n_best`` candidates, best first.

        ``beam_size=1`` is greedy search. ``length_penalty`` (``"none"``, ``"average"``,
        ``"gnmt"`` with exponent ``alpha``) ranks beam hypotheses of different lengths.
        With ``replace_unknown`` (and attention), an output ``<unk>`` is replaced by the source
        token the decoder attended to most when writing it (Luong et al. 2015, "unk replace"),
        which copies names, options and rare placeholders. A text with no known token raises
        ``DataError`` unless ``allow_unknown``.
        """
        if n_best > beam_size:
            raise ValueError(f"n_best={n_best} must be at most beam_size={beam_size}")
        results: list[list[Translation]] = []
        bos, eos = self.target_vocab.bos_index, self.target_vocab.eos_index
        for start in range(0, len(texts), DECODE_BATCH):
            batch = texts[start : start + DECODE_BATCH]
            src, lengths = self.encode(batch, allow_unknown=allow_unknown)
            state = self.model.start(src, lengths)
            bos_tokens = torch.full((src.size(0),), bos, dtype=torch.long)
            # Room for a translation twice as long as its source, within the training lengths.
            max_length = min(2 * src.size(1) + 10, 2 * self.data_config.max_len)
            if beam_size == 1:
                found = [[h] for h in search.greedy(self.model, state, bos_tokens, eos, max_length)]
            else:
                found = search.beam_search(
                    self.model,
                    state,
                    bos_tokens,
                    eos,
                    beam_size,
                    max_length,
                    length_penalty=length_penalty,
                    alpha=alpha,
                    n_best=n_best,
                )
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
        rows = torch.tensor([b for b, _ in wanted])
        width = max(len(found[b][k].tokens) for b, k in wanted)
        tgt_in = torch.full((len(wanted), width), self.target_vocab.pad_index)
        for i, (b, k) in enumerate(wanted):
            ids = [self.target_vocab.bos_index, *found[b][k].tokens][:width]
            tgt_in[i, : len(ids)] = torch.tensor(ids)
        weights = self.model.align(src[rows], lengths[rows], tgt_in)  # (n, T, S)
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
            raise ValueError("this model was trained with --attention none; it has no attention")
        best = self.translate([text], beam_size=beam_size, replace_unknown=False)[0][0]
        src, lengths = self.encode([text])
        vocab = self.target_vocab
        tgt_in = torch.tensor([[vocab.bos_index, *vocab.encode(best.tokens)]])
        weights = self.model.align(src, lengths, tgt_in)[0]  # (T + 1, S)
        return tokenize(text), [*best.tokens, EOS], weights

    # -- evaluating --------------------------------------------------------------------------

    def evaluate(self, split: str = "test", **options: Any) -> dict[str, Any]:
        """BLEU and chrF (sacrebleu) on a split of the run's corpus, and placeholder fidelity.

        Pairs with a side longer than the run's ``max_len`` are left out, as in training.
        ``options`` are those of ``translate`` (``beam_size``, ``length_penalty``, ...).
        ``placeholders_kept`` is the share of the split's sentences with printf placeholders
        whose placeholders all appear in the output (as a multiset, ignoring argument positions
        and quotes); ``placeholders_kept_reference`` is the same share for the references.
        """
        data = TranslationData(
            load_pairs(self.data_config),
            self.data_config,
            vocabs=(self.source_vocab, self.target_vocab),
        )
        pairs = data.texts[split]
        if not pairs:
            raise DataError(f"the {split} split of the run's corpus is empty")
        sources = [s for s, _ in pairs]
        references = [t for _, t in pairs]
        outputs = [
            candidates[0].text
            for candidates in self.translate(sources, allow_unknown=True, **options)
        ]
        return {
            "split": split,
            "sentences": len(pairs),
            "beam_size": options.get("beam_size", 1),
            "replace_unknown": options.get("replace_unknown", True),
            **corpus_scores(sources, outputs, references, lang=self.data_config.lang),
        }


def corpus_scores(
    sources: Sequence[str], outputs: Sequence[str], references: Sequence[str], *, lang: str
) -> dict[str, float]:
    """BLEU, chrF and placeholder fidelity of ``outputs`` against one reference each."""
    from sacrebleu.metrics import BLEU, CHRF

    bleu_tokenizer = (
        "zh" if lang.startswith("zh") else "char" if lang[:2] in ("ja", "ko") else "13a"
    )
    bleu = BLEU(tokenize=bleu_tokenizer).corpus_score(list(outputs), [list(references)])
    chrf = CHRF().corpus_score(list(outputs), [list(references)])
    with_placeholders = [i for i, s in enumerate(sources) if placeholders(s)]

    def kept(texts: Sequence[str]) -> float:
        if not with_placeholders:
            return float("nan")
        ok = sum(
            not collections.Counter(placeholders(sources[i]))
            - collections.Counter(placeholders(texts[i]))
            for i in with_placeholders
        )
        return ok / len(with_placeholders)

    return {
        "bleu": round(bleu.score, 2),
        "chrf": round(chrf.score, 2),
        "placeholders_kept": kept(outputs),
        "placeholders_kept_reference": kept(references),
        "sentences_with_placeholders": len(with_placeholders),
    }


def plot_attention(
    source: Sequence[str], output: Sequence[str], weights: Tensor, path: str | Path
) -> None:
    """Save the attention matrix as a labelled heat map (the format follows the suffix)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def labels(tokens: Sequence[str]) -> list[str]:
        return [t.removeprefix(JOINER) for t in tokens]

    height = max(3.0, 0.3 * len(output) + 1.5)
    width = max(4.0, 0.35 * len(source) + 2.0)
    figure, axes = plt.subplots(figsize=(width, height))
    image = axes.imshow(weights.numpy(), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_xticks(range(len(source)), labels(source), rotation=60, ha="right")
    axes.set_yticks(range(len(output)), labels(output))
    axes.set_xlabel("source")
    axes.set_ylabel("translation")
    figure.colorbar(image, ax=axes, label="attention weight")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
