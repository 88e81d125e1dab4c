"""The cells' input checks, with torch.nn's exception types and messages.

torch.nn's cells check the dimensions in Python and the sizes inside their C++ operators; rnnkit's
cells run plain autograd code, so these functions make the same checks, in the same order, with the
same words. (The layers' checks are torch.nn's own methods: rnnkit's layers subclass torch's.)
"""

from __future__ import annotations

from torch import Tensor


def check_cell_dims(name: str, input: Tensor, hx: Tensor | tuple | None) -> None:
    """Input and state must be 1-D (unbatched) or 2-D: ``ValueError`` as torch.nn raises."""
    if input.dim() not in (1, 2):
        raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.dim()}D instead")
    if hx is None:
        return
    if name == "LSTMCell":
        if isinstance(hx, Tensor):
            raise TypeError(
                "lstm_cell(): argument 'hx' (position 2) must be tuple of Tensors, not Tensor"
            )
        for idx, value in enumerate(hx):
            if value.dim() not in (1, 2):
                raise ValueError(
                    f"LSTMCell: Expected hx[{idx}] to be 1D or 2D, got {value.dim()}D instead"
                )
    elif hx.dim() not in (1, 2):
        raise ValueError(f"{name}: Expected hidden to be 1D or 2D, got {hx.dim()}D instead")


def check_cell_sizes(
    input: Tensor, states: list[Tensor], input_size: int, hidden_size: int
) -> None:
    """Batched input ``(B, I)`` and states against the sizes: ``RuntimeError``s as torch.nn's."""
    if input.shape[1] != input_size:
        raise RuntimeError(
            f"input has inconsistent input_size: got {input.shape[1]} expected {input_size}"
        )
    for i, state in enumerate(states):
        if input.shape[0] != state.shape[0]:
            raise RuntimeError(
                f"Input batch size {input.shape[0]} doesn't match hidden{i} batch size "
                f"{state.shape[0]}"
            )
        if state.shape[1] != hidden_size:
            raise RuntimeError(
                f"hidden{i} has inconsistent hidden_size: got {state.shape[1]}, expected "
                f"{hidden_size}"
            )
