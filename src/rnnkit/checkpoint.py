"""Run directories and checkpoints: safetensors for tensors, JSON for everything else.

A run directory holds one training run of one task. Its manifest ``run.json`` records the task
name (``"lm"``, ``"translate"``, ...) and the rnnkit version that wrote it; :meth:`RunDir.open`
refuses a directory of another task or another version with a one-line :class:`RunDirError`.

Every file is written atomically (a temporary file in the same folder, then ``os.replace``), so a
crash or a kill in the middle of a write leaves the previous version of the file intact.

Nothing is pickled. Nested Python structures that hold tensors (an optimizer's ``state_dict``, an
LSTM's ``(h, c)`` state, Python's random state) are split by :func:`flatten` into a flat dict of
tensors (for safetensors) and a JSON skeleton that says where each tensor goes; :func:`unflatten`
puts them back together. Example::

    run = RunDir.create("runs/x", task="lm")
    run.write_json("config.json", {"hidden_size": 256})
    run.save_tensors("model.safetensors", model.state_dict())
    run = RunDir.open("runs/x", task="lm", require=["config.json", "model.safetensors"])
    model.load_state_dict(run.load_tensors("model.safetensors")[0])
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from rnnkit import __version__
from rnnkit.errors import RunDirError
from rnnkit.files import atomic_path, write_text_atomic

MANIFEST = "run.json"
RUN_FORMAT = "rnnkit-run"
_META_KEY = "rnnkit"  # safetensors metadata entry that holds our JSON


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def save_tensors_atomic(
    path: str | os.PathLike, tensors: dict[str, Tensor], metadata: Any = None
) -> None:
    """Save ``tensors`` as a safetensors file (atomically), with ``metadata`` as JSON in its header.

    Tensors are copied to contiguous CPU memory first, so tied (shared) weights save fine.
    """
    plain = {k: v.detach().to("cpu").clone().contiguous() for k, v in tensors.items()}
    meta = None if metadata is None else {_META_KEY: json.dumps(metadata)}
    with atomic_path(path) as tmp:
        save_file(plain, tmp, metadata=meta)


def load_tensors(path: str | os.PathLike) -> tuple[dict[str, Tensor], Any]:
    """Tensors and JSON metadata of a file written by :func:`save_tensors_atomic`."""
    from safetensors import safe_open

    try:
        with safe_open(os.fspath(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get(_META_KEY)
        tensors = load_file(os.fspath(path))
    except (SafetensorError, OSError) as exc:
        raise RunDirError(f"cannot read {path}: {exc}") from None
    return tensors, (None if raw is None else json.loads(raw))


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


class RunDir:
    """One run's directory, checked to belong to ``task`` and this rnnkit version.

    Use :meth:`create` for a new run and :meth:`open` for an existing one.
    """

    def __init__(self, path: str | os.PathLike, task: str) -> None:
        self.path = Path(path)
        self.task = task

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r}, task={self.task!r})"

    @classmethod
    def create(cls, path: str | os.PathLike, task: str) -> RunDir:
        """Make a new run directory (it may exist if empty) and write its manifest.

        Raises:
            RunDirError: ``path`` is a file, already holds a run, or holds other files.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise RunDirError(f"{path} is a file; give a directory for the run")
        if (path / MANIFEST).exists():
            raise RunDirError(
                f"{path} already holds a run; continue it with --resume {path} "
                "or choose a new --out"
            )
        if path.is_dir() and any(path.iterdir()):
            raise RunDirError(f"{path} is not empty; choose a new or empty directory for --out")
        path.mkdir(parents=True, exist_ok=True)
        manifest = {
            "format": RUN_FORMAT,
            "task": task,
            "rnnkit_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        write_json_atomic(path / MANIFEST, manifest)
        return cls(path, task)

    @classmethod
    def open(cls, path: str | os.PathLike, task: str, *, require: Iterable[str] = ()) -> RunDir:
        """An existing run directory of ``task`` written by this rnnkit version.

        Args:
            path: the run directory.
            task: the task it must belong to.
            require: files that must be present (named in the error if missing).

        Raises:
            RunDirError: not a directory, no manifest, another task or version, or missing files.
        """
        path = Path(path)
        if not path.is_dir():
            raise RunDirError(f"no run directory at {path}")
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            raise RunDirError(f"{path} is not an rnnkit run directory (no {MANIFEST})")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RunDirError(f"{manifest_path} is damaged (not valid JSON)") from None
        if not isinstance(manifest, dict) or manifest.get("format") != RUN_FORMAT:
            raise RunDirError(f"{manifest_path} is not an rnnkit run manifest")
        if manifest.get("task") != task:
            raise RunDirError(
                f"{path} is a {manifest.get('task')!r} run, not a {task!r} run; "
                f"use `rnnkit {manifest.get('task')} ...` with it"
            )
        if manifest.get("rnnkit_version") != __version__:
            raise RunDirError(
                f"{path} was written by rnnkit {manifest.get('rnnkit_version')}, this is rnnkit "
                f"{__version__}; use that version or train a new run"
            )
        run = cls(path, task)
        missing = [name for name in require if not run.has(name)]
        if missing:
            raise RunDirError(f"{path} is missing {', '.join(missing)}; the run is incomplete")
        return run

    def file(self, name: str) -> Path:
        """Path of the file ``name`` inside the run directory."""
        return self.path / name

    def has(self, name: str) -> bool:
        """Whether the run directory holds the file ``name``."""
        return (self.path / name).is_file()

    def _require(self, name: str) -> Path:
        if not self.has(name):
            raise RunDirError(f"{self.path} is missing {name}; the run is incomplete")
        return self.path / name

    def write_json(self, name: str, obj: Any) -> None:
        """Write ``obj`` as ``name`` (atomically)."""
        write_json_atomic(self.file(name), obj)

    def read_json(self, name: str) -> Any:
        """The JSON content of ``name``."""
        path = self._require(name)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RunDirError(f"{path} is damaged (not valid JSON)") from None

    def save_tensors(self, name: str, tensors: dict[str, Tensor], metadata: Any = None) -> None:
        """Write tensors (and JSON ``metadata``) as the safetensors file ``name`` (atomically)."""
        save_tensors_atomic(self.file(name), tensors, metadata)

    def load_tensors(self, name: str) -> tuple[dict[str, Tensor], Any]:
        """Tensors and metadata of the safetensors file ``name``."""
        return load_tensors(self._require(name))

    def append_jsonl(self, name: str, record: dict[str, Any]) -> None:
        """Append one JSON object as a line of ``name``."""
        with open(self.file(name), "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def write_jsonl(self, name: str, records: Iterable[dict[str, Any]]) -> None:
        """Replace ``name`` with ``records``, one JSON object a line (atomically)."""
        text = "".join(json.dumps(r) + "\n" for r in records)
        write_text_atomic(self.file(name), text)

    def read_jsonl(self, name: str) -> list[dict[str, Any]]:
        """All records of the JSON-lines file ``name`` (empty if it does not exist)."""
        if not self.has(name):
            return []
        lines = self.file(name).read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]


def load_model_weights(run: RunDir, model: torch.nn.Module, name: str = "model.safetensors") -> Any:
    """Load the weights ``name`` of ``run`` into ``model``; returns the file's metadata.

    Raises:
        RunDirError: the file is missing or its tensors do not fit the model.
    """
    tensors, meta = run.load_tensors(name)
    try:
        model.load_state_dict(tensors)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise RunDirError(
            f"{run.file(name)} does not fit the model in config.json: {first}"
        ) from None
    return meta
