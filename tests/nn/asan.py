"""Running a Python script with gcc's AddressSanitizer preloaded, for the C loops' memory tests.

The script builds its own C library with ``-fsanitize=address`` (each test patches its module's
``cbuild.load``) and runs it; ASan's runtime must be the first library loaded, so the script runs
in a subprocess with ``LD_PRELOAD``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _runtime(name: str) -> str:
    found = subprocess.run(["cc", f"-print-file-name={name}"], capture_output=True, text=True)
    return found.stdout.strip()


def run_sanitized(tmp_path: Path, source: str, *args: str) -> subprocess.CompletedProcess:
    """Run the Python ``source`` with ``args`` under AddressSanitizer (leak checks off)."""
    script = tmp_path / "asan_case.py"
    script.write_text(source)
    libasan = _runtime("libasan.so")
    if not Path(libasan).exists():
        pytest.fail(f"gcc's AddressSanitizer runtime is missing ({libasan}): install libasan")
    # libstdc++ next to it: torch throws (and catches) C++ exceptions, which ASan intercepts.
    env = dict(
        os.environ,
        LD_PRELOAD=f"{libasan}:{_runtime('libstdc++.so.6')}",
        ASAN_OPTIONS="detect_leaks=0",
    )
    return subprocess.run(
        [sys.executable, str(script), *args], env=env, capture_output=True, text=True, timeout=600
    )


def assert_clean(done: subprocess.CompletedProcess) -> None:
    """No ASan report and a zero exit status."""
    assert "AddressSanitizer" not in done.stderr, done.stderr[-3000:]
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
