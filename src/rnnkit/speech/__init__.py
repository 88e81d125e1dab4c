"""Speech recognition: a recurrent acoustic model trained with CTC, from audio files to text
(the ``rnnkit speech`` application).

Rooms: :mod:`~rnnkit.speech.recipe` (the defaults), :mod:`~rnnkit.speech.synth` and
:mod:`~rnnkit.speech.data` (corpora, alphabet, batches), :mod:`~rnnkit.speech.audio` and
:mod:`~rnnkit.speech.features` (reading audio, log-mel features, augmentation),
:mod:`~rnnkit.speech.longform` (long recordings: segments, stitching, n-best across segments),
:mod:`~rnnkit.speech.model` (the acoustic model), :mod:`~rnnkit.speech.task` (the
``TrainingTask``), :mod:`~rnnkit.speech.decode` (greedy and prefix beam search, LM fusion,
alignments), :mod:`~rnnkit.speech.metrics` (WER/CER), :mod:`~rnnkit.speech.plots`,
:mod:`~rnnkit.speech.api` (``train``, ``load``, ``evaluate``; ``Recognizer.transcribe``;
``read_lexicon`` from :mod:`~rnnkit.speech.data`),
:mod:`~rnnkit.speech.cli`.

The API is importable from here (``from rnnkit.speech import SpeechRecipe, train, load``); it is
loaded on first use, so the command line can read the recipe's defaults without importing torch.
"""

from __future__ import annotations

from rnnkit.lazy import lazy_attributes
from rnnkit.speech.recipe import SpeechRecipe

_API = (
    "Alignment",
    "Recognizer",
    "Transcript",
    "align",
    "corpus",
    "evaluate",
    "load",
    "load_lm",
    "train",
)

__all__ = ["SpeechRecipe", *_API, "read_lexicon"]
__getattr__ = lazy_attributes(
    __name__, {**dict.fromkeys(_API, "rnnkit.speech.api"), "read_lexicon": "rnnkit.speech.data"}
)
