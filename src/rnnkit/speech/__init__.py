"""Speech recognition: a recurrent acoustic model trained with CTC, from audio files to text.

The rooms (see docs/speech.md): ``synth`` and ``data`` (corpora), ``audio`` and ``features``
(reading audio, log-mel features), ``model`` (the acoustic model), ``task`` (the adapter to the
shared trainer), ``recipe`` (defaults), ``decode`` (greedy and prefix beam search, LM fusion,
alignments), ``metrics`` (WER/CER), ``api`` (train, load, transcribe, evaluate), ``cli``.
"""
