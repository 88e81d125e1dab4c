"""Every check torch.nn makes, rnnkit.nn makes with the same exception type and the same message.

Each case is run twice, once with ``torch.nn`` and once with ``rnnkit.nn`` as ``nn``; both must
raise, and the type and message must agree (where torch.nn's message comes from deep inside its
operator, rnnkit's is its own, and only the type is compared: see ``docs/nn-dropin.md``).
"""

import warnings

import pytest
import torch
from torch.nn.utils.rnn import pack_sequence

import rnnkit.nn as rnn

ALSO_MESSAGE, TYPE_ONLY = "message", "type"


def _zeros(*shape, dtype=torch.float32):
    return torch.zeros(*shape, dtype=dtype)


CONSTRUCTORS = [
    lambda nn: nn.LSTM(3, 0),
    lambda nn: nn.GRU(3, -2),
    lambda nn: nn.RNN(0, 4),
    lambda nn: nn.LSTM(3, 4.0),
    lambda nn: nn.LSTM("3", 4),
    lambda nn: nn.GRU(3, 4, dropout=1.5),
    lambda nn: nn.LSTM(3, 4, dropout=-0.1),
    lambda nn: nn.LSTM(3, 4, dropout=True),
    lambda nn: nn.LSTM(3, 4, proj_size=4),
    lambda nn: nn.LSTM(3, 4, proj_size=-1),
    lambda nn: nn.RNN(3, 4, proj_size=2),  # ValueError in torch, not TypeError
    lambda nn: nn.GRU(3, 4, proj_size=2),
    lambda nn: nn.RNN(3, 4, nonlinearity="sigmoid"),
    lambda nn: nn.RNN(3, 4, 1, "gelu"),
    lambda nn: nn.LSTM(3, 4, num_layers=0),
    lambda nn: nn.LSTM(3, 4, num_layers=1.5),
    lambda nn: nn.LSTM(3, 4, dtype=torch.int64),
    lambda nn: nn.GRU(3, 4, batch_first=1),
    lambda nn: nn.GRU(3, 4, bias="yes"),
    lambda nn: nn.GRU(3, 4, 1, True, False, 0.0, False, "cpu"),  # no proj_size slot in a GRU
    lambda nn: nn.LSTM(3, 4, bogus=1),
    lambda nn: nn.GRUCell(3, 4, dtype=torch.int32),
    lambda nn: nn.LSTMCell(3, -1),
    lambda nn: nn.RNNCell(3, 4.0),
]


@pytest.mark.parametrize("build", CONSTRUCTORS)
def test_constructor_errors_are_torchs(build):
    _same_error(build, ALSO_MESSAGE)


def _layer_cases():
    lstm_h = (_zeros(2, 1, 4), _zeros(2, 1, 4))
    packed = pack_sequence([torch.randn(3, 3), torch.randn(2, 3)])
    return [
        ("LSTM", {"num_layers": 2}, lambda m: m(torch.randn(2, 1, 5)), ALSO_MESSAGE),
        ("LSTM", {}, lambda m: m(torch.randn(2, 1, 1, 3)), ALSO_MESSAGE),
        ("GRU", {}, lambda m: m(torch.randn(3)), ALSO_MESSAGE),
        ("RNN", {}, lambda m: m(torch.randn(2, 1, 1, 3)), ALSO_MESSAGE),
        ("LSTM", {}, lambda m: m(torch.ones(2, 1, 3, dtype=torch.int64)), ALSO_MESSAGE),
        ("GRU", {}, lambda m: m(torch.randn(2, 1, 3, dtype=torch.float64)), ALSO_MESSAGE),
        ("LSTM", {"num_layers": 2}, lambda m: m(torch.randn(5, 2, 3), lstm_h), ALSO_MESSAGE),
        (
            "LSTM",
            {"num_layers": 2},
            lambda m: m(torch.randn(5, 1, 3), (lstm_h[0], lstm_h[1][:1])),
            ALSO_MESSAGE,
        ),  # fmt: skip
        (
            "LSTM",
            {"num_layers": 2},
            lambda m: m(torch.randn(5, 1, 3), (lstm_h[0][:, 0], lstm_h[1])),
            ALSO_MESSAGE,
        ),  # fmt: skip
        ("LSTM", {}, lambda m: m(torch.randn(5, 3), lstm_h), ALSO_MESSAGE),
        ("GRU", {}, lambda m: m(torch.randn(5, 3), _zeros(1, 1, 4)), ALSO_MESSAGE),
        ("RNN", {}, lambda m: m(torch.randn(5, 2, 3), _zeros(1, 4)), ALSO_MESSAGE),
        ("GRU", {}, lambda m: m(torch.randn(5, 2, 3), _zeros(1, 2, 5)), ALSO_MESSAGE),
        (
            "RNN",
            {"batch_first": True},
            lambda m: m(torch.randn(2, 5, 3), _zeros(1, 5, 4)),
            ALSO_MESSAGE,
        ),  # fmt: skip
        (
            "LSTM",
            {"proj_size": 2},
            lambda m: m(torch.randn(5, 2, 3), (_zeros(1, 2, 4), _zeros(1, 2, 4))),
            ALSO_MESSAGE,
        ),  # fmt: skip
        ("GRU", {}, lambda m: m(packed, _zeros(1, 3, 4)), ALSO_MESSAGE),
        ("RNN", {}, lambda m: m(torch.randn(0, 2, 3)), ALSO_MESSAGE),  # zero-length sequence
        ("GRU", {}, lambda m: m(torch.randn(0, 3)), ALSO_MESSAGE),
        ("LSTM", {}, lambda m: m(packed, (_zeros(1, 3, 4), _zeros(1, 3, 4))), TYPE_ONLY),
        ("LSTM", {}, lambda m: m(torch.randn(5, 2, 3), _zeros(1, 2, 4)), TYPE_ONLY),
        (
            "GRU",
            {},
            lambda m: m(torch.randn(2, 1, 3), _zeros(1, 1, 4, dtype=torch.float64)),
            TYPE_ONLY,
        ),  # fmt: skip
    ]


@pytest.mark.parametrize(("kind", "kw", "call", "compare"), _layer_cases())
def test_layer_input_errors_are_torchs(kind, kw, call, compare):
    torch.manual_seed(0)
    _same_error(lambda nn: call(getattr(nn, kind)(3, 4, **kw)), compare)


def test_a_layer_with_mixed_weight_dtypes_raises_as_torch_does():
    """torch.nn raises a RuntimeError from inside its operator; rnnkit one that names the weight,
    and the C loop never sees the mix (the memory-safety bug this guards against)."""

    def call(nn, kind):
        layer = getattr(nn, kind)(3, 4)
        layer.weight_hh_l0.data = layer.weight_hh_l0.data.double()
        return layer(torch.randn(5, 2, 3))

    for kind in ("RNN", "LSTM", "GRU"):
        _same_error(lambda nn, kind=kind: call(nn, kind), TYPE_ONLY)
        with pytest.raises(RuntimeError, match="weight_hh_l0 has dtype torch.float64"):
            call(rnn, kind)


def _cell_cases():
    def state(kind, *shape, dtype=torch.float32):
        h = _zeros(*shape, dtype=dtype)
        return (h, h) if kind == "LSTMCell" else h

    cases = []
    for kind in ("RNNCell", "LSTMCell", "GRUCell"):
        cases += [
            (kind, lambda m: m(torch.randn(2, 5)), ALSO_MESSAGE),
            (kind, lambda m, k=kind: m(torch.randn(2, 3), state(k, 3, 4)), ALSO_MESSAGE),
            (kind, lambda m, k=kind: m(torch.randn(2, 3), state(k, 2, 5)), ALSO_MESSAGE),
            (kind, lambda m: m(torch.randn(1, 2, 3)), ALSO_MESSAGE),
            (kind, lambda m, k=kind: m(torch.randn(2, 3), state(k, 1, 2, 4)), ALSO_MESSAGE),
            (kind, lambda m, k=kind: m(torch.randn(3), state(k, 1, 4)), ALSO_MESSAGE),
            (kind, lambda m: m(torch.randn(2, 3, dtype=torch.float64)), ALSO_MESSAGE),
            (kind, lambda m: m(torch.ones(2, 3, dtype=torch.int64)), ALSO_MESSAGE),
            (
                kind,
                lambda m, k=kind: m(torch.randn(2, 3), state(k, 2, 4, dtype=torch.float64)),
                ALSO_MESSAGE,
            ),  # fmt: skip
        ]
    cases += [
        ("LSTMCell", lambda m: m(torch.randn(2, 3), _zeros(2, 4)), ALSO_MESSAGE),
        ("LSTMCell", lambda m: m(torch.randn(2, 3), (_zeros(2, 4), _zeros(2, 5))), ALSO_MESSAGE),
        ("RNNCell", lambda m: m(torch.randn(2, 3), _zeros(2, 4, 1).squeeze(2)[:1]), ALSO_MESSAGE),
    ]
    return cases


@pytest.mark.parametrize(("kind", "call", "compare"), _cell_cases())
def test_cell_input_errors_are_torchs(kind, call, compare):
    _same_error(lambda nn: call(getattr(nn, kind)(3, 4)), compare)


def test_cell_nonlinearity_is_checked_when_run_as_in_torch():
    _same_error(lambda nn: nn.RNNCell(3, 4, nonlinearity="gelu")(torch.randn(2, 3)), ALSO_MESSAGE)


def _same_error(call, compare: str) -> None:
    errors = []
    for nn in (torch.nn, rnn):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(Exception) as info:  # noqa: PT011 - any type, compared below
                call(nn)
        errors.append(info.value)
    theirs, ours = errors
    assert type(ours) is type(theirs), (repr(theirs), repr(ours))
    if compare == ALSO_MESSAGE:
        assert str(ours) == str(theirs)
