"""A character-level language model built only on the reference: one-hot in, softmax out.

The model reads one character per step as a one-hot vector, runs it through a (multi-layer) rnn,
lstm or gru, and projects the top hidden state to scores over the next character (see ``loss``)::

    x_t = onehot(c_t)                         (B, V)
    h_t = cell(x_t, state_{t-1})              (B, H), top layer
    p_t = softmax(W_out h_t + b_out)          distribution of c_{t+1}

Its parameters are one dict: the recurrent network's (torch.nn names, ``input_size = V``) plus
``weight_out`` (V, H) and ``bias_out`` (V,).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnkit.reference.cells import BACKWARD, FORWARD
from rnnkit.reference.loss import log_softmax, output_loss_backward, output_loss_forward
from rnnkit.reference.params import GATES, init_params

OUTPUT_NAMES = ("weight_out", "bias_out")

State = np.ndarray | tuple[np.ndarray, np.ndarray] | None


@dataclass
class CharModel:
    """Architecture and parameters of a character model."""

    cell: str  # "rnn", "lstm" or "gru"
    num_layers: int  # stacked recurrent layers
    params: dict[str, np.ndarray]  # recurrent parameters + weight_out, bias_out
    nonlinearity: str = "tanh"  # rnn only: "tanh" or "relu"

    @property
    def vocab_size(self) -> int:
        return self.params["weight_out"].shape[0]

    def forward(self, x: np.ndarray, state: State) -> tuple:
        """The recurrent network's forward pass: ``(hidden (T, B, H), final_state, cache)``."""
        options = {"nonlinearity": self.nonlinearity} if self.cell == "rnn" else {}
        recurrent = {k: v for k, v in self.params.items() if k not in OUTPUT_NAMES}
        return FORWARD[self.cell](recurrent, x, state, num_layers=self.num_layers, **options)


def init_char_model(
    vocab_size: int,
    *,
    cell: str = "lstm",
    hidden_size: int = 128,
    num_layers: int = 1,
    nonlinearity: str = "tanh",
    rng: np.random.Generator,
) -> CharModel:
    """A character model with torch-style uniform initialisation and a zero output bias."""
    if cell not in GATES:
        raise ValueError(f"cell must be one of {sorted(GATES)}, got {cell!r}")
    params = init_params(cell, vocab_size, hidden_size, num_layers=num_layers, rng=rng)
    bound = 1.0 / np.sqrt(hidden_size)
    params["weight_out"] = rng.uniform(-bound, bound, size=(vocab_size, hidden_size))
    params["bias_out"] = np.zeros(vocab_size)
    return CharModel(cell, num_layers, params, nonlinearity)


def one_hot(indices: np.ndarray, size: int) -> np.ndarray:
    """``indices`` (T, B) as one-hot vectors (T, B, size)."""
    return np.eye(size)[indices]


def window_loss(
    model: CharModel, inputs: np.ndarray, targets: np.ndarray, state: State = None
) -> tuple[float, dict[str, np.ndarray], State]:
    """Loss and gradients of one window of characters, starting from ``state``.

    ``state`` is treated as a constant: the gradient stops at the window's first step, which is
    what truncated BPTT does at a window boundary. Nothing after the window is in this loss, so
    the gradient arriving at the final state is zero.

    Args:
        model: the character model.
        inputs: character indices, (T, B).
        targets: the next character at each step, (T, B).
        state: the recurrent state before the window; None means zeros.

    Returns:
        ``(loss, grads, final_state)``: the summed cross-entropy (averaged over the batch), its
        gradient for every entry of ``model.params``, and the state after the window.
    """
    hidden, final_state, cache = model.forward(one_hot(inputs, model.vocab_size), state)
    loss, out_cache = output_loss_forward(
        model.params["weight_out"], model.params["bias_out"], hidden, targets
    )
    d_weight_out, d_bias_out, d_hidden = output_loss_backward(out_cache)
    recurrent = {k: v for k, v in model.params.items() if k not in OUTPUT_NAMES}
    d_recurrent, _d_x, _d_state = BACKWARD[model.cell](recurrent, d_hidden, None, cache)
    grads = {**d_recurrent, "weight_out": d_weight_out, "bias_out": d_bias_out}
    return loss, grads, final_state


def sample(
    model: CharModel,
    first: int,
    length: int,
    *,
    rng: np.random.Generator,
    state: State = None,
    temperature: float = 1.0,
) -> list[int]:
    """Draw ``length`` characters after ``first``, one step at a time, from the model."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    out, index = [], first
    for _ in range(length):
        hidden, state, _ = model.forward(one_hot(np.array([[index]]), model.vocab_size), state)
        scores = hidden[0, 0] @ model.params["weight_out"].T + model.params["bias_out"]  # (V,)
        probs = np.exp(log_softmax(scores / temperature))
        index = int(rng.choice(model.vocab_size, p=probs / probs.sum()))
        out.append(index)
    return out
