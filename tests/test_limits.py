"""``rnnkit.limits``: the decoding memory estimate and the beam it allows (docs/reliability.md)."""

import re

import pytest
import torch

from rnnkit import limits
from rnnkit.errors import ConfigError
from rnnkit.search import SearchOptions, beam_search
from rnnkit.search.dispatch import decode
from rnnkit.speech.decode import prefix_beam_search


class StackedDecoder(torch.nn.Module):
    """A two-layer LSTM decoder, float64: its state is (h, c) of shape (layers, N, H)."""

    def __init__(self, vocab=50, hidden=16, layers=2):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, hidden)
        self.lstm = torch.nn.LSTM(hidden, hidden, num_layers=layers)
        self.out = torch.nn.Linear(hidden, vocab)
        self.double()

    def start(self, n):
        h = torch.zeros(self.lstm.num_layers, n, self.lstm.hidden_size, dtype=torch.float64)
        return (h, h.clone())

    def step(self, tokens, state):
        output, state = self.lstm(self.embed(tokens)[None], state)  # (1, N, H)
        return torch.log_softmax(self.out(output[0]), dim=-1), state

    def reorder(self, state, index):
        return tuple(s.index_select(1, index) for s in state)


def test_the_state_counts_hidden_size_layers_and_dtype_bytes():
    decoder = StackedDecoder(hidden=16, layers=2)
    assert limits.state_bytes(decoder.start(3)) == 2 * 2 * 3 * 16 * 8  # (h, c) x layers x N x H
    assert limits.state_bytes({"a": [torch.zeros(4, dtype=torch.int32)], "b": "text"}) == 16
    one = limits.decoding_bytes(1, 10, state_size=512, vocab_size=50)
    assert one == 512 + 50 * 4 * limits.LOGIT_COPIES + 10 * limits.HISTORY_BYTES
    assert limits.decoding_bytes(7, 10, inputs=3, state_size=512, vocab_size=50) == 21 * one


def widest_beam(message):
    return int(re.search(r"widest beam that fits is ([\d,]+)", message)[1].replace(",", ""))


def test_beam_search_refuses_a_beam_memory_cannot_hold_and_names_the_widest_that_fits(
    monkeypatch,
):
    decoder = StackedDecoder()
    bos = torch.zeros(3, dtype=torch.long)
    per_input_state = limits.state_bytes(decoder.start(3)) // 3
    need = limits.decoding_bytes(1, 6, inputs=3, state_size=per_input_state, vocab_size=50)
    monkeypatch.setattr(limits, "physical_memory", lambda: 5 * need + need // 2)
    with pytest.raises(ConfigError) as refused:
        beam_search(decoder, decoder.start(3), bos, 1, 6, 6)
    message = str(refused.value)
    assert widest_beam(message) == 5 and "--beam 6" in message
    assert "scores over 50 tokens" in message
    assert "more than this machine's" in message and "\n" not in message
    found = beam_search(decoder, decoder.start(3), bos, 1, 5, 6, n_best=5)  # the widest runs
    assert [len(row) for row in found] == [5, 5, 5]
    # decode() checks greedy search and sampling (their length) before the first step.
    monkeypatch.setattr(limits, "physical_memory", lambda: 1000)
    with pytest.raises(ConfigError, match="ask for fewer tokens"):
        decode(decoder, decoder.start(3), bos, 1, 6, SearchOptions())


def test_speech_beam_counts_the_language_model_state(monkeypatch):
    log_probs = torch.log_softmax(torch.randn(20, 6, generator=torch.Generator().manual_seed(0)), 1)
    monkeypatch.setattr(limits, "physical_memory", lambda: 4 * 1024**2)
    with pytest.raises(ConfigError) as refused:
        prefix_beam_search(log_probs, beam=100_000)
    assert 1 <= widest_beam(str(refused.value)) < 100_000
    assert prefix_beam_search(log_probs, beam=widest_beam(str(refused.value)) // 100)
