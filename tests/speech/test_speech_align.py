"""``rnnkit.speech.align``: what the model heard and where it put each character, checked against
a computation of its own (soundfile, log-mel, the model) and a brute-force best alignment."""

import itertools
import random

import soundfile
import torch
from speech_tones import RATE, tone_word

from rnnkit import speech
from rnnkit.speech.features import log_mel, normalize


def best_alignment_score(log_probs, tokens):
    """The most probable CTC path's log-probability among those that read ``tokens``, by trying
    every placement: token u on the frames [start_u, end_u), runs in order, blanks elsewhere,
    a blank between two equal tokens."""
    T = log_probs.shape[0]
    # gain[k][t]: what frames [0, t) add when they read class k instead of the blank
    gain = (log_probs - log_probs[:, :1]).cumsum(0)
    gain = torch.cat([torch.zeros(1, log_probs.shape[1]), gain]).T.tolist()
    best = -float("inf")
    for cuts in itertools.combinations(range(T + 1), 2 * len(tokens)):
        spans = list(zip(cuts[0::2], cuts[1::2]))
        if any(e1 == s2 and a == b for (_, e1), (s2, _), a, b in
               zip(spans, spans[1:], tokens, tokens[1:])):  # fmt: skip
            continue
        best = max(best, sum(gain[k][e] - gain[k][s] for k, (s, e) in zip(tokens, spans)))
    return log_probs[:, 0].sum().item() + best


def test_align_shows_what_the_model_heard_and_the_best_alignment(trained, tmp_path):
    wav = tmp_path / "abc.wav"
    soundfile.write(wav, tone_word("abc", random.Random(1)), RATE, subtype="PCM_16")
    asr = speech.load(trained)
    found = speech.align(asr, wav)

    # The features and posteriors of the file, computed here from its samples.
    samples, rate = soundfile.read(wav, dtype="float32")
    assert rate == asr.features.sample_rate
    feats = normalize(log_mel(torch.from_numpy(samples), asr.features))
    assert torch.allclose(found.features, feats, atol=1e-5)
    with torch.no_grad():
        log_probs, _ = asr.model(feats.unsqueeze(0), torch.tensor([feats.shape[0]]))
    assert torch.allclose(found.posteriors, log_probs[:, 0].exp(), atol=1e-6)
    assert torch.allclose(found.posteriors.sum(1), torch.ones(len(found.posteriors)))
    assert found.whole and found.symbols == asr.alphabet.symbols
    assert found.step_seconds == found.frame_seconds * asr.model.config.stack

    # The characters spell the transcript and sit on a most probable CTC path.
    assert "".join(c.text for c in found.characters) == found.transcript.text
    assert found.transcript == asr.transcribe([wav], timestamps=True)[0]
    tokens = asr.alphabet.encode(found.transcript.text)
    assert 1 <= len(tokens) <= 3  # few enough to try every placement
    lp = found.posteriors.double().log()
    path = lp[:, 0].sum().item() + sum(
        (lp[c.start : c.end, k] - lp[c.start : c.end, 0]).sum().item()
        for k, c in zip(tokens, found.characters)
    )
    assert abs(path - best_alignment_score(lp, tokens)) < 1e-9
    # ... and the word timings of the transcript are the characters' frames in seconds.
    first, last = found.characters[0], found.characters[-1]
    word = found.transcript.words[0]
    assert (word.start, word.end) == (
        round(first.start * found.step_seconds, 3),
        round(last.end * found.step_seconds, 3),
    )


def test_align_with_the_beam_gives_the_n_best_list(trained, tmp_path):
    wav = tmp_path / "cab.wav"
    soundfile.write(wav, tone_word("cab", random.Random(2)), RATE, subtype="PCM_16")
    asr = speech.load(trained)
    found = speech.align(asr, wav, beam=4, nbest=3)
    assert found.transcript == asr.transcribe([wav], beam=4, nbest=3, timestamps=True)[0]
    assert len(found.transcript.nbest) == 3
    assert "".join(c.text for c in found.characters) == found.transcript.nbest[0][0]
