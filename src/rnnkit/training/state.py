"""Exact-resume state: everything a resumed run needs, as ONE safetensors file (one atomic write).

Nothing is pickled. Nested Python structures that hold tensors (an optimizer's ``state_dict``, an
LSTM's ``(h, c)`` state, Python's random state) are split by :func:`flatten` into a flat dict of
tensors (for safetensors) and a JSON skeleton that says where each tensor goes; :func:`unflatten`
puts them back together.
"""

from __future__ import annotations

import random
from typing import Any

import torch
from torch import Tensor

from rnnkit.errors import RunDirError
from rnnkit.runs import RunDir, check_finite


def flatten(obj: Any, prefix: str) -> tuple[dict[str, Tensor], Any]:
    """Split a nested structure into ``{key: tensor}`` and a JSON-able skeleton.

    Tensors become ``{"__tensor__": key}``; tuples ``{"__tuple__": [...]}``; dicts with non-string
    keys ``{"__items__": [[key, value], ...]}`` (an optimizer's state is keyed by int).
    """
    tensors: dict[str, Tensor] = {}

    def walk(x: Any, path: str) -> Any:
        if isinstance(x, Tensor):
            tensors[path] = x
            return {"__tensor__": path}
        if isinstance(x, tuple):
            return {"__tuple__": [walk(v, f"{path}.{i}") for i, v in enumerate(x)]}
        if isinstance(x, list):
            return [walk(v, f"{path}.{i}") for i, v in enumerate(x)]
        if isinstance(x, dict):
            if all(isinstance(k, str) for k in x):
                return {k: walk(v, f"{path}.{k}") for k, v in x.items()}
            return {"__items__": [[k, walk(v, f"{path}.{k}")] for k, v in x.items()]}
        if x is None or isinstance(x, (bool, int, float, str)):
            return x
        raise TypeError(f"cannot store a {type(x).__name__} in a checkpoint (at {path!r})")

    return tensors, walk(obj, prefix)


def unflatten(skeleton: Any, tensors: dict[str, Tensor]) -> Any:
    """Inverse of :func:`flatten`."""
    if isinstance(skeleton, list):
        return [unflatten(v, tensors) for v in skeleton]
    if isinstance(skeleton, dict):
        if "__tensor__" in skeleton:
            return tensors[skeleton["__tensor__"]]
        if "__tuple__" in skeleton:
            return tuple(unflatten(v, tensors) for v in skeleton["__tuple__"])
        if "__items__" in skeleton:
            return {k: unflatten(v, tensors) for k, v in skeleton["__items__"]}
        return {k: unflatten(v, tensors) for k, v in skeleton.items()}
    return skeleton


def save_training_state(
    run: RunDir,
    name: str,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    carry: Any,
    state: dict[str, Any],
    averages: Any = None,
) -> None:
    """Write everything a resumed run needs as ONE safetensors file (so one atomic write).

    Tensors: the weights (``model.*``), the optimizer's tensors (``optimizer.*``), torch's RNG
    state (``rng.torch``) and the carried recurrent state (``carry.*``). JSON metadata: ``state``
    (the trainer's position), Python's RNG state, and the layouts of the optimizer and carry.
    ``averages``: an object with ``state_dict()`` (the trainer's exponential average of the
    weights), stored under ``ema.*``.
    """
    tensors, optimizer_layout = flatten(optimizer.state_dict(), "optimizer")
    carry_tensors, carry_layout = flatten(carry, "carry")
    tensors.update(carry_tensors)
    tensors.update({f"model.{k}": v for k, v in model.state_dict().items()})
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {
        "trainer": state,
        "python_rng": flatten(random.getstate(), "py")[1],
        "optimizer": optimizer_layout,
        "carry": carry_layout,
    }
    if averages is not None:
        average_tensors, meta["ema"] = flatten(averages.state_dict(), "ema")
        tensors.update(average_tensors)
    run.save_tensors(name, tensors, meta)


def load_training_state(
    run: RunDir,
    name: str,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    averages: Any = None,
) -> tuple[Any, dict[str, Any]]:
    """Restore weights, optimizer and RNG states (and ``averages``: what was saved as such) from
    :func:`save_training_state`'s file.

    Returns: the carried recurrent state and the trainer's ``state`` dict.

    Raises:
        RunDirError: the file is missing or damaged, or does not fit the model/optimizer.
    """
    tensors, meta = run.load_tensors(name)
    weights = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    check_finite(run.file(name), weights)
    try:
        model.load_state_dict(weights)
        optimizer.load_state_dict(unflatten(meta["optimizer"], tensors))
        if averages is not None:
            averages.load_state_dict(unflatten(meta["ema"], tensors))
        carry = unflatten(meta["carry"], tensors)
        torch.set_rng_state(tensors["rng.torch"])
        random.setstate(unflatten(meta["python_rng"], {}))
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RunDirError(f"{run.file(name)} does not fit this model: {first}") from None
    return carry, meta["trainer"]
