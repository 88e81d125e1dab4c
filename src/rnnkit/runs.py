"""Run directories: the one owner of their layout, for every task.

A run directory holds one training run of one task:

==================  =========================================================================
``run.json``        the manifest: format, task name (``"lm"``, ``"translate"``, ...), rnnkit
                    version, creation time; :meth:`RunDir.open` refuses another task or version
``config.json``     one schema for every task: ``{"recipe": ..., "model": ..., "train": ...}``
                    (the recipe the user gave, the model's config, the ``TrainConfig``), plus
                    task-specific sections (the LM's ``"data"`` checksum)
``vocab.json``      the vocabulary (or vocabularies) the model was trained with
``model.safetensors``  the weights with the best validation loss (what ``load`` reads)
``last.safetensors``   everything to resume (see :mod:`rnnkit.training.state`)
``trainer.json``    a readable summary; ``metrics.jsonl`` one record a line; ``loss.png``
==================  =========================================================================

The file names are defined here once. :func:`start`, :func:`resume` and :func:`load` are how an
application creates, continues and opens a run; a damaged or foreign directory gives the same
one-line :class:`rnnkit.errors.RunDirError` for every task. Every file is written atomically (a
temporary file in the same folder, then ``os.replace``), so a crash or a kill in the middle of a
write leaves the previous version intact. Nothing is pickled: tensors go to safetensors, the rest
to JSON. Example::

    run = runs.start("runs/x", "lm", recipe=asdict(recipe), model=asdict(cfg), train=asdict(tc))
    run.save_tensors(runs.BEST, model.state_dict())
    run, config = runs.load("runs/x", "lm")
    model = runs.build(run, config, "model", LMConfig.from_dict)
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from rnnkit import __version__
from rnnkit.errors import ConfigError, RunDirError
from rnnkit.files import RUN_MARKER, atomic_path, remove_stale_temporaries, write_text_atomic

T = TypeVar("T")
logger = logging.getLogger(__name__)

# The files of a run directory (the only place their names are spelled).
MANIFEST = RUN_MARKER
LOCK = "run.lock"  # held (flock) by the process that trains into the run
CONFIG = "config.json"
VOCAB = "vocab.json"
BEST = "model.safetensors"
CHECKPOINT = "last.safetensors"
SUMMARY = "trainer.json"
METRICS = "metrics.jsonl"
PLOT = "loss.png"
RUN_FILES = (MANIFEST, CONFIG, VOCAB, BEST, CHECKPOINT, SUMMARY, METRICS, PLOT)

# The run-directory locks this process holds: real path -> (open lock file, holders).
_HELD: dict[str, tuple[Any, int]] = {}

RUN_FORMAT = "rnnkit-run"
SECTIONS = ("recipe", "model", "train")  # the sections every config.json has
# The only settings a resumed run may change: its budgets (everything else is fixed by the run).
RESUMABLE = frozenset({"epochs", "max_steps", "max_minutes"})
_META_KEY = "rnnkit"  # safetensors metadata entry that holds our JSON


def writes_runs() -> bool:
    """Whether this process writes run directories: only rank 0 of a torchrun launch does
    (``RANK`` is torchrun's; see docs/distributed.md)."""
    return os.environ.get("RANK", "0") == "0"


def all_ranks_checked() -> None:
    """Under a torchrun launch that has joined its process group, wait until every rank has
    checked the run directory (so no rank sees the one rank 0 is about to make)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


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
    except OSError as exc:
        raise RunDirError(f"cannot read {path}: {exc.strerror or exc}") from None
    except SafetensorError as exc:
        raise RunDirError(
            f"cannot read {path}: the file is damaged or truncated ({exc}); restore it from a "
            "copy, or train a new run"
        ) from None
    return tensors, (None if raw is None else json.loads(raw))


def a_task(name: object) -> str:
    """``name`` quoted after its article, as messages say it: "an 'lm'", "a 'speech'"."""
    word = str(name)
    vowel_sound = word[:1] in tuple("aeiou") or (
        word[:1] in tuple("fhlmnrsx") and not any(c in "aeiouy" for c in word)
    )  # a vowel, or an initialism whose first letter's name starts with one ("lm": "el-em")
    return f"{'an' if vowel_sound else 'a'} {name!r}"


class RunDir:
    """One run's directory, checked to belong to ``task`` and this rnnkit version.

    Use :meth:`create` for a new run and :meth:`open` for an existing one.
    """

    def __init__(self, path: str | os.PathLike, task: str) -> None:
        self.path = Path(path)
        self.task = task
        self.writer = writes_runs()  # False: another rank writes this run (reads still work)
        self._locked = False

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r}, task={self.task!r})"

    @classmethod
    def create(cls, path: str | os.PathLike, task: str) -> RunDir:
        """Make a new run directory, lock it (see :meth:`lock`) and write its manifest.

        ``path`` may exist if it is empty, or if it holds a run that never wrote its first
        checkpoint (a start that failed or was killed): such a run is removed and started afresh.

        Raises:
            RunDirError: ``path`` is a file, holds a run with a checkpoint, holds other files, or
                another process holds its lock.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise RunDirError(f"{path} is a file; give a directory for the run")
        if (path / MANIFEST).exists() and (path / CHECKPOINT).exists():
            raise RunDirError(
                f"{path} already holds a run; continue it with --resume {path} "
                "or choose a new --out"
            )
        if path.is_dir() and not (path / MANIFEST).exists() and _user_files(path):
            raise RunDirError(f"{path} is not empty; choose a new or empty directory for --out")
        all_ranks_checked()
        if not writes_runs():
            return cls(path, task)  # rank 0 makes it
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunDirError(f"cannot create {path}: {exc.strerror or exc}") from None
        run = cls(path, task)
        run.lock()
        if (path / MANIFEST).exists():
            # Checked again under the lock: another process may have got there first.
            if (path / CHECKPOINT).exists():
                run.unlock()
                raise RunDirError(
                    f"{path} already holds a run; continue it with --resume {path} "
                    "or choose a new --out"
                )
            run._clear_unstarted()
        manifest = {
            "format": RUN_FORMAT,
            "task": task,
            "rnnkit_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        write_json_atomic(path / MANIFEST, manifest)
        return run

    def _clear_unstarted(self) -> None:
        """Remove the files of a run that never reached its first checkpoint (ours only)."""
        foreign = _user_files(self.path) - set(RUN_FILES)
        if foreign:
            self.unlock()
            raise RunDirError(
                f"{self.path} holds a run that never started and other files "
                f"({', '.join(sorted(foreign))}); choose a new or empty directory for --out"
            )
        for name in RUN_FILES:
            if self.has(name):
                self.file(name).unlink()
        logger.info("%s held a run that never wrote a checkpoint; starting it afresh", self.path)

    # ------------------------------------------------------------------------- the lock
    def lock(self) -> None:
        """Take the run's exclusive lock (``run.lock``, ``flock``) for this process.

        The kernel releases it when the process ends, however it ends, so a lock file left by a
        dead process is stale and simply taken over. Temporary files of a killed write are
        removed once the lock is held. Within one process the lock is shared (counted), so a
        Python session may start a run and resume it while the first object still exists.

        With several processes (torchrun), only rank 0, the one that writes, takes it.

        Raises:
            RunDirError: another process holds the lock (naming its pid).
        """
        if self._locked or not self.writer:
            return  # ranks other than 0 write nothing: rank 0's lock covers the run
        key = os.path.realpath(self.path)
        if key in _HELD:
            handle, count = _HELD[key]
            _HELD[key] = (handle, count + 1)
            self._locked = True
            return
        handle = open(self.file(LOCK), "a+", encoding="utf-8")  # noqa: SIM115 (held open)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise RunDirError(
                f"{self.path} is in use by another rnnkit process (pid {holder}); "
                "wait for it to finish or stop it"
            ) from None
        handle.seek(0)
        previous = handle.read().strip()
        if previous and previous != str(os.getpid()):
            logger.info("%s: stale lock of pid %s taken over", self.path, previous)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        _HELD[key] = (handle, 1)
        self._locked = True
        remove_stale_temporaries(self.path)

    def unlock(self) -> None:
        """Release the lock taken by :meth:`lock` (nothing if not held)."""
        if not self._locked:
            return
        self._locked = False
        key = os.path.realpath(self.path)
        handle, count = _HELD.pop(key)
        if count > 1:
            _HELD[key] = (handle, count - 1)
        else:
            handle.close()  # closing the descriptor releases the flock

    def __del__(self) -> None:
        try:
            self.unlock()
        except Exception:  # noqa: BLE001 (interpreter shutdown: the process end releases it)
            pass

    @classmethod
    def open(
        cls, path: str | os.PathLike, task: str | None, *, require: Iterable[str] = ()
    ) -> RunDir:
        """An existing run directory of ``task`` written by this rnnkit version.

        Args:
            path: the run directory.
            task: the task it must belong to (None: any task; its manifest says which).
            require: files that must be present (named in the error if missing).

        Raises:
            RunDirError: not a directory, no manifest, another task or version, or missing files.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            made_by = f"`rnnkit {task} train --out`" if task else "`train --out`"
            raise RunDirError(
                f"{path} is a file, not a run directory; give the directory {made_by} wrote"
            )
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
        if task is None and isinstance(manifest.get("task"), str):
            task = manifest["task"]
        if manifest.get("task") != task:
            raise RunDirError(
                f"{path} is {a_task(manifest.get('task'))} run, not {a_task(task)} run; "
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
        if self.writer:
            write_json_atomic(self.file(name), obj)

    def read_json(self, name: str) -> Any:
        """The JSON content of ``name``."""
        path = self._require(name)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RunDirError(f"{path} is damaged (not valid JSON)") from None

    def write_config(self, config: dict[str, Any]) -> None:
        """Write ``config.json`` (atomically)."""
        self.write_json(CONFIG, config)

    def read_config(self) -> dict[str, Any]:
        """The run's ``config.json``, checked to hold the sections every task writes.

        Raises:
            RunDirError: the file is missing, not JSON, or lacks a section.
        """
        config = self.read_json(CONFIG)
        if not isinstance(config, dict):
            raise RunDirError(f"{self.file(CONFIG)} is damaged (not a JSON object)")
        for section in SECTIONS:
            if not isinstance(config.get(section), dict):
                raise RunDirError(
                    f"{self.file(CONFIG)} is damaged (no {section!r} section); "
                    "train a new run or restore the file"
                )
        return config

    def save_tensors(self, name: str, tensors: dict[str, Tensor], metadata: Any = None) -> None:
        """Write tensors (and JSON ``metadata``) as the safetensors file ``name`` (atomically)."""
        if self.writer:
            save_tensors_atomic(self.file(name), tensors, metadata)

    def load_tensors(self, name: str) -> tuple[dict[str, Tensor], Any]:
        """Tensors and metadata of the safetensors file ``name``."""
        return load_tensors(self._require(name))

    def append_jsonl(self, name: str, record: dict[str, Any]) -> None:
        """Append one JSON object as a line of ``name`` (flushed to disk; rank 0 only)."""
        if not self.writer:
            return
        try:
            with open(self.file(name), "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:  # a full disk: name the file (a torn line is dropped on reading)
            if exc.errno is not None and exc.filename is None:
                exc.filename = os.fspath(self.file(name))
            raise

    def write_jsonl(self, name: str, records: Iterable[dict[str, Any]]) -> None:
        """Replace ``name`` with ``records``, one JSON object a line (atomically)."""
        text = "".join(json.dumps(r) + "\n" for r in records)
        if self.writer:
            write_text_atomic(self.file(name), text)

    def read_jsonl(self, name: str) -> list[dict[str, Any]]:
        """All records of the JSON-lines file ``name`` (empty if it does not exist).

        A torn last line (what a kill or a full disk leaves in the middle of an append) is
        dropped with a warning; any other damaged line is a :class:`RunDirError` naming the file.
        """
        if not self.has(name):
            return []
        path = self.file(name)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise RunDirError(f"{path} is damaged (not UTF-8 text); remove the file") from None
        records = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if number == len(lines):
                    logger.warning("%s: dropped a torn last line (an interrupted write)", path)
                    continue
                raise RunDirError(
                    f"{path}, line {number}: damaged record; remove that line to continue"
                ) from None
            if not isinstance(record, dict):
                raise RunDirError(f"{path}, line {number}: not a JSON object; remove that line")
            records.append(record)
        return records


def _user_files(path: Path) -> set[str]:
    """Names in ``path`` other than rnnkit's lock and temporary files."""
    return {
        p.name
        for p in path.iterdir()
        if p.name != LOCK and not (p.name.startswith(".") and p.name.endswith(".tmp"))
    }


def check_finite(path: str | os.PathLike, tensors: dict[str, Tensor]) -> None:
    """Refuse weights holding NaN or infinite values (a damaged or diverged file).

    Raises:
        RunDirError: naming the file and the first bad tensor.
    """
    for key, value in tensors.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise RunDirError(
                f"{path} is damaged: {key!r} holds NaN or infinite values; "
                "restore the file or train a new run"
            )


def check_vocab_size(run: RunDir, name: str, size: int, expected: int) -> None:
    """Refuse a vocabulary file ``name`` of ``size`` entries for a model of ``expected``.

    Raises:
        RunDirError: naming the file and both sizes.
    """
    if size != expected:
        raise RunDirError(
            f"{run.file(name)} is damaged: it has {size} tokens but the model in {CONFIG} has "
            f"{expected}; restore the file or train a new run"
        )


def load_model_weights(run: RunDir, model: torch.nn.Module, name: str = BEST) -> Any:
    """Load the weights ``name`` of ``run`` into ``model``; returns the file's metadata.

    Raises:
        RunDirError: the file is missing or its tensors do not fit the model.
    """
    tensors, meta = run.load_tensors(name)
    check_finite(run.file(name), tensors)
    try:
        model.load_state_dict(tensors)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise RunDirError(f"{run.file(name)} does not fit the model in {CONFIG}: {first}") from None
    return meta


# ---------------------------------------------------------------------------------------------
# Start, resume, load: how every application creates, continues and opens its runs


def start(
    path: str | os.PathLike,
    task: str,
    *,
    recipe: dict[str, Any],
    model: dict[str, Any],
    train: dict[str, Any],
    **extra: Any,
) -> RunDir:
    """Create the run directory ``path`` of ``task`` and write its ``config.json``.

    Args:
        recipe, model, train: the three sections every ``config.json`` has (JSON-able dicts).
        extra: task-specific sections (JSON-able).

    Raises:
        RunDirError: ``path`` is a file, already holds a run, or holds other files.
    """
    run = RunDir.create(path, task)
    run.write_config({"recipe": recipe, "model": model, "train": train, **extra})
    return run


def check_resumable(changes: dict[str, Any] | None) -> dict[str, Any]:
    """The settings ``changes`` a resume asks for (None values dropped), checked to be budgets.

    Raises:
        ConfigError: a setting outside :data:`RESUMABLE` (naming it and what may change).
    """
    given = {k: v for k, v in (changes or {}).items() if v is not None}
    fixed = sorted(set(given) - RESUMABLE)
    if fixed:
        names = ", ".join(f"--{k.replace('_', '-')}" for k in fixed)
        raise ConfigError(
            f"a resumed run keeps its settings; only the budget (--epochs, --max-steps, "
            f"--max-minutes) may change, not {names}; start a new run with --out instead"
        )
    return given


def resume(
    path: str | os.PathLike, task: str, changes: dict[str, Any] | None = None
) -> tuple[RunDir, dict[str, Any]]:
    """Open the run in ``path`` to continue it; returns the run and its config.

    The returned config's ``"train"`` section has the budget ``changes`` applied (see
    :func:`check_resumable`); the trainer writes it to ``config.json`` once the checkpoint has
    been loaded, so a resume that fails leaves ``config.json`` as it was. The run is locked
    (:meth:`RunDir.lock`) until training ends.

    Raises:
        RunDirError: not a run of ``task``, damaged, or without a checkpoint to resume from.
        ConfigError: ``changes`` holds something else than a budget.
    """
    given = check_resumable(changes)
    run = RunDir.open(path, task)
    if not run.has(CHECKPOINT):
        raise RunDirError(
            f"{run.path} never wrote a checkpoint, so there is nothing to resume; "
            f"start it again with --out {run.path}"
        )
    run._require(CONFIG)
    run.lock()
    config = run.read_config()
    config["train"] = {**config["train"], **given}
    return run, config


def load(
    path: str | os.PathLike, task: str, *, weights: str = BEST, require: Iterable[str] = ()
) -> tuple[RunDir, dict[str, Any]]:
    """Open the trained run in ``path`` to use it; returns the run and its config.

    Raises:
        RunDirError: not a run of ``task``, damaged, or missing ``weights`` or ``require``.
    """
    run = RunDir.open(path, task, require=[CONFIG, *require, weights])
    return run, run.read_config()


def build(
    run: RunDir,
    config: dict[str, Any],
    section: str,
    factory: Callable[[Any], T],
    *,
    name: str = CONFIG,
) -> T:
    """``factory(config[section])``, with a damaged section reported as one :class:`RunDirError`
    (``config``: the content of the run's file ``name``).

    Use it for everything built from ``config.json`` (model configs, recipes), so a hand-edited
    or truncated file gives the same one line for every task.
    """
    try:
        return factory(config[section])
    except (KeyError, TypeError, ValueError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunDirError(
            f"{run.file(name)} is damaged (section {section!r}: {detail}); "
            "train a new run or restore the file"
        ) from None
