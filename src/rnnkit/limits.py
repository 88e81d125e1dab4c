"""Memory limits: refuse what cannot fit in this machine's memory before allocating it.

A model of ``--hidden 100000`` or word vectors of ``--dim 1000000000`` would otherwise exhaust the
memory (and swap) for minutes before failing with a traceback, or take the machine down with it.
Each size a user chooses is turned into an estimate of the bytes it needs and checked against the
physical memory here, once, with the estimate in the message. Torch-free.
"""

from __future__ import annotations

import os

from rnnkit.errors import ConfigError

FLOAT_BYTES = 4  # float32
# Training keeps four float32 copies of each parameter: weights, gradients, Adam's two moments.
TRAINING_COPIES = 4
GATES = {"rnn": 1, "gru": 3, "lstm": 4, "mingru": 2, "minlstm": 3}  # weight blocks per layer


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine (None where the system does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def human_bytes(n: float) -> str:
    """``n`` bytes as ``"12.3 GiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError("unreachable")


def check_fits(n_bytes: float, what: str, *, hint: str) -> None:
    """Raise :class:`ConfigError` if ``n_bytes`` exceed this machine's physical memory.

    Args:
        n_bytes: the estimate.
        what: what needs it ("a 2x100000 LSTM with 100000-dim embeddings").
        hint: what to do instead ("choose a smaller --hidden or --embedding").
    """
    total = physical_memory()
    if total is not None and n_bytes > total:
        raise ConfigError(
            f"{what} needs about {human_bytes(n_bytes)} of memory, more than this machine's "
            f"{human_bytes(total)}; {hint}"
        )


def recurrent_parameters(
    cell: str, vocab_size: int, embedding_dim: int, hidden_size: int, num_layers: int
) -> int:
    """Parameters of an embedding, ``num_layers`` recurrent layers and an output layer."""
    gates = GATES.get(cell, 4)
    total = vocab_size * embedding_dim + hidden_size * vocab_size + vocab_size
    inputs = embedding_dim
    for _ in range(num_layers):
        total += gates * hidden_size * (inputs + hidden_size + 2)
        inputs = hidden_size
    return total
