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


# ---------------------------------------------------------------------------------------------
# Decoding: the beam is capped by what the model at hand needs per hypothesis, not a fixed number.

HISTORY_BYTES = 64  # kept per token of each hypothesis: its id, its score, the text made of it
# Per hypothesis and vocabulary entry at each step: the log-probabilities, the candidate scores
# (hypothesis score + log-probability) and the top-k's working copy, float32 each.
LOGIT_COPIES = 3


def state_bytes(state: object) -> int:
    """Bytes of the arrays (torch tensors, NumPy arrays) held in ``state``: nested tuples, lists,
    dicts and dataclasses are walked. Torch-free (anything with an integer ``nbytes`` counts)."""
    if isinstance(state, (tuple, list)):
        return sum(state_bytes(x) for x in state)
    if isinstance(state, dict):
        return sum(state_bytes(x) for x in state.values())
    if hasattr(state, "__dataclass_fields__"):
        return sum(state_bytes(getattr(state, name)) for name in state.__dataclass_fields__)
    size = getattr(state, "nbytes", None)
    return size if isinstance(size, int) else 0


def decoding_bytes(
    beam: int, length: int, *, inputs: int = 1, state_size: int = 0, vocab_size: int = 0
) -> int:
    """Estimated bytes of a beam search over ``inputs`` inputs, ``beam`` hypotheses each.

    Each hypothesis holds the decoder's state (``state_size`` bytes: hidden state x layers x
    dtype bytes, plus what attention keeps, such as the encoder outputs or image features), its
    tokens (``length`` x :data:`HISTORY_BYTES`) and, at every step, ``vocab_size`` scores
    (x :data:`LOGIT_COPIES` float32 copies).
    """
    per_hypothesis = state_size + vocab_size * FLOAT_BYTES * LOGIT_COPIES + length * HISTORY_BYTES
    return inputs * beam * per_hypothesis


def check_decoding(
    beam: int, length: int, *, inputs: int = 1, state_size: int = 0, vocab_size: int = 0
) -> None:
    """Refuse a decoding that cannot fit in this machine's memory (see :func:`decoding_bytes`),
    naming the estimate and the widest beam that fits.

    Raises:
        ConfigError: one line with the estimate, the memory and what to pass instead.
    """
    need = decoding_bytes(beam, length, inputs=inputs, state_size=state_size, vocab_size=vocab_size)
    total = physical_memory()
    if total is None or need <= total:
        return
    one = decoding_bytes(1, length, inputs=inputs, state_size=state_size, vocab_size=vocab_size)
    widest = total // one
    if widest >= 1:
        hint = f"the widest beam that fits is {widest:,}: pass --beam {widest} or less"
    else:
        hint = "ask for fewer tokens (--length)"
    parts = [f"{length:,} tokens of history"]
    if state_size:
        parts.insert(0, f"decoder state {human_bytes(state_size)}")
    if vocab_size:
        parts.append(f"scores over {vocab_size:,} tokens")
    per = need // (inputs * beam)
    raise ConfigError(
        f"decoding {inputs:,} input{'s' if inputs > 1 else ''} with --beam {beam:,} for up to "
        f"{length:,} tokens needs about {human_bytes(need)} of memory ({human_bytes(per)} per "
        f"hypothesis: {', '.join(parts)}), more than this machine's {human_bytes(total)}; {hint}"
    )


# ---------------------------------------------------------------------------------------------
# Pictures decoded whole (rnnkit.caption.images): JPEGs are decoded at reduced scale and big PNGs
# streamed; any other picture is held whole by Pillow, 4 bytes a pixel, and converting it to RGB
# over white makes up to three more copies.

DECODED_PIXEL_BYTES = 16
IMAGE_MEMORY_SHARE = 4  # a picture decoded whole may take this fraction (1/4) of the memory
PILLOW_PIXELS = 2 * 89_478_485  # Pillow's own refusal threshold, where memory is not known


def image_memory() -> int:
    """Bytes one picture may take while it is decoded."""
    total = physical_memory()
    return PILLOW_PIXELS * DECODED_PIXEL_BYTES if total is None else total // IMAGE_MEMORY_SHARE


def image_pixel_cap() -> int:
    """The most pixels a picture decoded whole may have on this machine."""
    return image_memory() // DECODED_PIXEL_BYTES
