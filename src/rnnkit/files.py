"""The files rnnkit reads and writes: atomic writes, bounded reads of regular files, and the rule
for what an output may replace. Torch-free, so data modules can use it.

Writes go to a temporary file in the same folder, flushed to disk (``fsync``), then renamed over
the target: a crash, a kill or a full disk in the middle of a write leaves the previous version of
the file intact. The temporary file is removed on any error; one left by ``kill -9`` is named
``.NAME.*.tmp`` and :func:`remove_stale_temporaries` cleans it at the next start.

Reads take regular files only (a FIFO with no writer would hang, ``/dev/zero`` never ends) and
never more than a size bound, so a wrong ``--data`` is one line, not a hang or an exhausted memory.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from rnnkit.errors import DataError

logger = logging.getLogger(__name__)

RUN_MARKER = "run.json"  # the manifest that makes a folder a run directory (see rnnkit.runs)
MAX_INPUT_BYTES = 4 * 1024**3  # the largest input file read whole (4 GiB)
_TEMP_SUFFIX = ".tmp"


def _temporary_name(path: Path) -> str:
    return f".{path.name}."


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path to write to; on success it is flushed to disk and replaces ``path``;
    on any error (a full disk included) it is removed and ``path`` is left as it was.

    An ``OSError`` without a file name gets ``path`` as its file name, so the one-line message
    says which write failed.

    Example::

        with atomic_path("model.safetensors") as tmp:
            save_file(tensors, tmp)
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=_temporary_name(path), suffix=_TEMP_SUFFIX
        )
    except OSError as exc:  # (a read-only folder: the message names the file, not a temporary)
        exc.filename = os.fspath(path)
        raise
    os.close(fd)
    try:
        yield tmp
        _fsync_file(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; ours are ordinary files
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename is None:
            exc.filename = os.fspath(path)
        raise


def _fsync_file(name: str) -> None:
    fd = os.open(name, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``path`` atomically when the block ends without error."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        yield handle
        handle.flush()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (flushed to disk before the rename)."""
    with atomic_open(path) as handle:
        handle.write(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` as UTF-8 to ``path`` atomically (newlines as given)."""
    write_bytes_atomic(path, text.encode("utf-8"))


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files a killed atomic write left in ``folder``; returns them.

    Call it only while no other process writes to ``folder`` (a run directory's lock holder).
    """
    removed = []
    for entry in Path(folder).glob(f".*{_TEMP_SUFFIX}"):
        if entry.is_file():
            entry.unlink()
            removed.append(entry)
    if removed:
        logger.info(
            "removed %d temporary files of an interrupted write in %s", len(removed), folder
        )
    return removed


# ---------------------------------------------------------------------------------------------
# Reading inputs


def check_regular_input(path: str | os.PathLike, *, what: str = "input") -> os.stat_result:
    """``os.stat`` of ``path``, checked to be a readable regular file (before anything opens it).

    Raises:
        DataError: missing, a directory, a FIFO or device (which could hang or never end), or
            unreadable; one line naming the file.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"no such file: {path}") from None
    except PermissionError:
        raise DataError(f"cannot read {path}: permission denied") from None
    if stat.S_ISDIR(info.st_mode):
        raise DataError(f"{path} is a directory; give a {what} file")
    if not stat.S_ISREG(info.st_mode):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(info.st_mode) else "not a regular file"
        raise DataError(
            f"{path} is {kind}; give a regular {what} file (or - to read standard input)"
        )
    if not os.access(path, os.R_OK):
        raise DataError(f"cannot read {path}: permission denied")
    return info


def read_input_bytes(
    path: str | os.PathLike, *, limit: int = MAX_INPUT_BYTES, what: str = "input"
) -> bytes:
    """The bytes of the regular file ``path`` (``-``: standard input), at most ``limit`` of them.

    Raises:
        DataError: not a regular file (see :func:`check_regular_input`) or larger than ``limit``.
    """
    if os.fspath(path) == "-":
        data = sys.stdin.buffer.read(limit + 1)
    else:
        info = check_regular_input(path, what=what)
        if info.st_size > limit:
            raise DataError(_too_large(path, info.st_size, limit))
        try:
            with open(path, "rb") as handle:
                data = handle.read(limit + 1)
        except PermissionError:
            raise DataError(f"cannot read {path}: permission denied") from None
    if len(data) > limit:
        raise DataError(_too_large(path, len(data), limit))
    return data


def _too_large(path: str | os.PathLike, size: int, limit: int) -> str:
    return (
        f"{path} is larger than {limit / 1024**3:.1f} GiB ({size / 1024**3:.1f} GiB read); "
        "give a smaller file"
    )


# ---------------------------------------------------------------------------------------------
# What an output may replace


def check_output_file(
    path: str | os.PathLike,
    *,
    inputs: Iterable[str | os.PathLike] = (),
    force: bool = False,
    ours: Callable[[Path], bool] | None = None,
    what: str = "output",
    option: str = "--out",
) -> Path:
    """Check that writing ``path`` destroys nothing the user made; returns it as a Path.

    Refused always: an input of the same command (``--data x --out x``), a file inside a run
    directory, a directory. Refused unless ``force``: any other existing file, except one
    ``ours(path)`` recognises as written by rnnkit (its format), which is replaced. Call it
    before the command's work, so a refusal costs nothing.

    Raises:
        DataError: one line naming the file (as the ``option`` that gave it) and what to do.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{option} {path} is a directory; give a file name for the {what}")
    for source in inputs:
        if os.fspath(source) != "-" and Path(source).exists() and _same_file(path, source):
            raise DataError(
                f"{option} {path} is also an input of this command; choose another file"
            )
    if (path.parent / RUN_MARKER).is_file():
        raise DataError(
            f"{option} {path} is inside the run directory {path.parent}; choose a file outside it"
        )
    if path.exists() and not force:
        if ours is not None and ours(path):
            logger.info("replacing %s (an rnnkit %s)", path, what)
            return path
        raise DataError(
            f"{option} {path} exists and is not an rnnkit {what}; choose another file or pass "
            "--force"
        )
    return path


def _same_file(a: Path, b: str | os.PathLike) -> bool:
    try:
        return a.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def is_disk_full(exc: OSError) -> bool:
    """Whether ``exc`` says the disk (or the quota) is full."""
    return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
