"""rnnkit.files: atomic writes under a full disk and a kill, bounded reads of regular files only,
and what an output may replace."""

import errno
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from rnnkit import files
from rnnkit.errors import DataError


def full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("where", ["write", "fsync"])
def test_full_disk_keeps_the_previous_file_and_leaves_no_temporary(tmp_path, monkeypatch, where):
    target = tmp_path / "vectors.txt"
    target.write_text("the previous version\n")
    # A full disk shows up at write() for small buffered files, or at fsync() (delayed allocation).
    if where == "write":
        import builtins

        real_open = builtins.open

        class FullFile:
            def __init__(self, handle):
                self.handle = handle

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.handle.close()

            def write(self, data):
                full_disk()

            def flush(self):
                pass

        monkeypatch.setattr(
            builtins, "open", lambda f, mode="r", *a, **k: FullFile(real_open(f, mode, *a, **k))
        )
    else:
        monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError) as caught:
        files.write_text_atomic(target, "the new version, never complete\n")
    monkeypatch.undo()
    assert caught.value.errno == errno.ENOSPC
    assert caught.value.filename == str(target)  # the one-line message names the file
    assert target.read_text() == "the previous version\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vectors.txt"]


def test_a_kill_in_the_middle_of_a_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "big.bin"
    target.write_bytes(b"old" * 1000)
    script = textwrap.dedent(f"""
        import os, signal
        from rnnkit import files
        with files.atomic_open({str(target)!r}) as handle:
            handle.write(b"new" * 100000)
            handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert done.returncode == -signal.SIGKILL
    assert target.read_bytes() == b"old" * 1000
    leftovers = [p for p in tmp_path.iterdir() if p.name != "big.bin"]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".big.bin.")
    assert files.remove_stale_temporaries(tmp_path) == leftovers
    assert [p.name for p in tmp_path.iterdir()] == ["big.bin"]


def test_non_regular_inputs_are_refused_without_opening_them(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # opening it for reading would block forever: no writer
    with pytest.raises(DataError, match="is a FIFO .*regular text file .*- to read standard"):
        files.read_input_bytes(fifo, what="text")
    with pytest.raises(DataError, match="/dev/zero is not a regular file"):
        files.read_input_bytes("/dev/zero")
    with pytest.raises(DataError, match="is a directory"):
        files.read_input_bytes(tmp_path)
    with pytest.raises(DataError, match="no such file"):
        files.read_input_bytes(tmp_path / "missing")


def test_reads_are_size_bounded(tmp_path):
    path = tmp_path / "text.txt"
    path.write_bytes(b"x" * 2000)
    assert files.read_input_bytes(path, limit=2000) == b"x" * 2000
    with pytest.raises(DataError, match="is larger than"):
        files.read_input_bytes(path, limit=1999)


def test_unreadable_input_is_one_line(tmp_path, monkeypatch):
    path = tmp_path / "secret.txt"
    path.write_text("x")
    monkeypatch.setattr(os, "access", lambda p, mode: False)  # (the tests may run as root)
    with pytest.raises(DataError, match="cannot read .*secret.txt: permission denied"):
        files.read_input_bytes(path)


def test_outputs_never_replace_inputs_run_files_or_foreign_files(tmp_path):
    data = tmp_path / "my.txt"
    data.write_text("the corpus")
    with pytest.raises(DataError, match="is also an input"):
        files.check_output_file(data, inputs=[data], force=True)
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    with pytest.raises(DataError, match="inside the run directory"):
        files.check_output_file(run / "model.safetensors", force=True)
    other = tmp_path / "notes.txt"
    other.write_text("mine")
    with pytest.raises(DataError, match="exists and is not an rnnkit vector file; .*--force"):
        files.check_output_file(other, what="vector file")
    assert files.check_output_file(other, force=True) == other
    assert files.check_output_file(other, ours=lambda p: True) == other
    assert files.check_output_file(tmp_path / "new.txt") == tmp_path / "new.txt"
    with pytest.raises(DataError, match="is a directory"):
        files.check_output_file(run, force=True)
    assert data.read_text() == "the corpus" and other.read_text() == "mine"
