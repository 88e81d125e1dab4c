"""Compile one of rnnkit's C source files into a shared library on first use; load it with ctypes.

rnnkit's C kernels (:mod:`rnnkit.nn.native`, :mod:`rnnkit.embed.native`) are optional
speed-ups of PyTorch code that stays in place as the fallback. Each is one ``.c`` file shipped
with the package and built with the system ``cc`` (``$CC`` to override) into
``$XDG_CACHE_HOME/rnnkit/native`` (or ``~/.cache/rnnkit/native``), under a name that hashes the
source, the flags, the compiler and the processor, so it is built once per machine (about a
second) and rebuilt when the source changes. Without a working compiler, :func:`load` logs why
and returns None, and the caller uses its PyTorch code.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import re
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

FLAGS = ("-O3", "-march=native", "-fno-trapping-math", "-fPIC", "-shared")


def cache_dir() -> Path:
    """Where the built libraries live: ``$XDG_CACHE_HOME/rnnkit/native`` or ``~/.cache/...``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rnnkit" / "native"


@functools.cache
def _cpu_features() -> str:
    """The processor's model and instruction-set flags: ``-march=native`` builds differ per CPU, so
    a cache directory shared between machines must not hand one CPU's build to another."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return platform.processor()
    wanted = ("model name", "flags", "Features", "CPU part")
    lines = {line.split(":")[0].strip(): line for line in text.splitlines() if ":" in line}
    return "\n".join(lines.get(name, "") for name in wanted)


def _source_bytes(source: Path, seen: frozenset[Path] = frozenset()) -> bytes:
    """``source`` followed by every header it includes from its own directory (``#include
    "x.h"``), recursively: a change to a shared header must rebuild each library that uses it."""
    text = source.read_bytes()
    for name in re.findall(rb'^[ \t]*#[ \t]*include[ \t]+"([^"]+)"', text, flags=re.MULTILINE):
        header = source.parent / name.decode()
        if header not in seen and header.is_file():
            text += _source_bytes(header, seen | {source})
    return text


def build(source: Path, name: str, flags: Sequence[str] = (), optional: Sequence[str] = ()) -> Path:
    """Compile ``source`` (once) with :data:`FLAGS` plus ``flags``; return the library's path.

    Args:
        source: the C file.
        name: the library's name before the hash, e.g. ``"rnnkit_loops_float"``.
        flags: extra compiler arguments (``-D`` defines, ...).
        optional: arguments dropped if the compiler rejects them (``-fopenmp``, ...).

    Raises:
        OSError, subprocess.SubprocessError: no compiler, or the build failed.
    """
    cc = os.environ.get("CC", "cc")
    settings = (cc, FLAGS, tuple(flags), tuple(optional), platform.machine(), _cpu_features())
    key = hashlib.sha256(_source_bytes(source) + repr(settings).encode()).hexdigest()[:16]
    target = cache_dir() / f"{name}_{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        out = Path(tmp) / target.name
        cmd = [cc, *FLAGS, *flags, str(source), "-o", str(out), "-lm"]
        try:
            subprocess.run([*cmd, *optional], check=True, capture_output=True, timeout=120)
        except subprocess.CalledProcessError:
            if not optional:
                raise
            subprocess.run(cmd, check=True, capture_output=True, timeout=120)
        os.replace(out, target)  # atomic: concurrent builders all end with a whole file
    log.info("built %s", target)
    return target


def load(
    source: Path, name: str, flags: Sequence[str] = (), optional: Sequence[str] = ()
) -> ctypes.CDLL | None:
    """:func:`build` and load the library; None (with a logged warning) when that fails."""
    try:
        return ctypes.CDLL(str(build(source, name, flags, optional)))
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("could not build %s (%s); using the PyTorch code instead", source.name, exc)
        return None
