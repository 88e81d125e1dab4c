"""Machine translation: a recurrent encoder-decoder with attention (the ``rnnkit translate``
application).

Rooms: :mod:`~rnnkit.translate.recipe` (the defaults), :mod:`~rnnkit.translate.data` (corpus,
split, vocabularies, batches; file formats in :mod:`~rnnkit.translate.formats`, git's catalog in
:mod:`~rnnkit.translate.catalog`, the tokenizer in :mod:`~rnnkit.translate.tokens`),
:mod:`~rnnkit.translate.model` (``Seq2Seq``), :mod:`~rnnkit.translate.task` (the
``TrainingTask``), :mod:`~rnnkit.translate.metrics` (BLEU, chrF, placeholders),
:mod:`~rnnkit.translate.api` (``train``, ``load``, ``translate``, ``evaluate``),
:mod:`~rnnkit.translate.cli`.

The API is importable from here (``from rnnkit.translate import TranslateRecipe, train``); it is
loaded on first use, so the command line can read the recipe's defaults without importing torch.
"""

from __future__ import annotations

from rnnkit.lazy import lazy_attributes
from rnnkit.translate.recipe import TranslateRecipe

_API = (
    "AttendedTranslation",
    "Translation",
    "Translator",
    "evaluate",
    "load",
    "train",
    "translate",
    "translate_with_attention",
)

__all__ = ["TranslateRecipe", *_API]
__getattr__ = lazy_attributes(__name__, dict.fromkeys(_API, "rnnkit.translate.api"))
