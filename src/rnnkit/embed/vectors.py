"""Word vectors: a vocabulary and a matrix, cosine queries, and the common file formats.

Three formats are read and written:

* ``word2vec``: a text header ``"<words> <dim>"``, then one line per word: the word and ``dim``
  numbers separated by single spaces (the format of Mikolov's ``word2vec -binary 0``).
* ``word2vec-binary``: the same header, then for each word its UTF-8 bytes, a space, and ``dim``
  little-endian float32 values, optionally followed by a newline (``word2vec -binary 1``).
* ``glove``: like ``word2vec`` without the header line (the GloVe release files).

Words are separated from their numbers by a single space and lines end with ``"\\n"`` only, so any
word without a space or newline in it round-trips, whatever other characters it holds.

**Case folding travels in a sidecar.** Whether the vectors were trained on lowercased text decides
how queries are looked up (``God`` finds ``god`` only in lowercased vectors). The formats have no
place for it (word2vec's tools and gensim read the header as exactly two integers), so vectors
that know their folding write it beside the file as ``FILE.rnnkit.json``
(``{"kind": "rnnkit word vectors", "lowercase": true, "sha256": ...}``), the SHA-256 tying it to
the bytes of that one file. Loading reads it when it matches the file; without one (files of other
tools, or a sidecar left behind by another version of the file) the folding is detected from the
vocabulary: no word with a capital letter means lowercased.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from rnnkit.errors import DataError, RnnkitError
from rnnkit.files import atomic_open, read_input_bytes, write_text_atomic

logger = logging.getLogger(__name__)

FORMATS = ("word2vec", "word2vec-binary", "glove")
ANALOGY_METHODS = ("3cosadd", "3cosmul")
CASE_RECORD_KIND = "rnnkit word vectors"  # the "kind" of a case-folding sidecar
CASE_RECORD_SUFFIX = ".rnnkit.json"  # the sidecar of FILE is FILE.rnnkit.json


class UnknownWordError(RnnkitError, KeyError):
    """A query word is not in the vocabulary of the vectors."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WordVectors:
    """A vocabulary of ``n`` words with one ``dim``-dimensional vector each.

    Args:
        words: the words, in row order (for trained vectors, most frequent first).
        vectors: array of shape ``(n, dim)``; stored as float32.
        lowercase: whether the vectors were trained on lowercased text, when known (training
            knows; a file says so in its sidecar); None: detected from the words.

    Queries use cosine similarity. Words not in the vocabulary raise :class:`UnknownWordError`
    naming them.
    """

    def __init__(
        self, words: Sequence[str], vectors: np.ndarray, *, lowercase: bool | None = None
    ) -> None:
        matrix = np.ascontiguousarray(vectors, dtype=np.float32)
        if matrix.ndim != 2:
            raise ValueError(f"vectors must be a 2-D array (words, dim), got shape {matrix.shape}")
        if len(words) != matrix.shape[0]:
            raise ValueError(
                f"mismatched sizes: {len(words)} words but {matrix.shape[0]} vector rows"
            )
        self.words = list(words)
        self.vectors = matrix
        self.index = {}
        for i, word in enumerate(self.words):
            if not isinstance(word, str) or not word:
                raise ValueError(f"word {i} is {word!r}; words must be non-empty strings")
            if word in self.index:
                raise ValueError(f"duplicate word {word!r} at rows {self.index[word]} and {i}")
            self.index[word] = i
        self._unit: np.ndarray | None = None
        self._lowercase = lowercase
        self.case_recorded = lowercase is not None  # known from training, not detected
        self.case_record: str | None = None  # the sidecar the folding was read from

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def __getitem__(self, word: str) -> np.ndarray:
        return self.vectors[self.row(word)]

    def __repr__(self) -> str:
        return f"WordVectors({len(self)} words, dim={self.dim})"

    @property
    def dim(self) -> int:
        """Number of components of each vector."""
        return self.vectors.shape[1]

    @property
    def unit(self) -> np.ndarray:
        """The vectors scaled to unit length, shape ``(n, dim)`` (zero rows stay zero)."""
        if self._unit is None:
            norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
            self._unit = self.vectors / np.maximum(norms, 1e-12)
        return self._unit

    @property
    def lowercase(self) -> bool:
        """Whether these vectors were trained on lowercased text, so queries are folded to lower
        case too (``God`` finds ``god``): as recorded, else detected (no word has a capital)."""
        if self._lowercase is None:
            self._lowercase = not any(w != w.lower() for w in self.words)
        return self._lowercase

    @property
    def case_rule(self) -> str:
        """Which case folding applies to queries and why, for messages."""
        if self.case_recorded:
            how = "trained on lowercased text" if self.lowercase else "trained keeping case"
            where = f"as recorded in {self.case_record}" if self.case_record else "as recorded"
            folding = "lowercased" if self.lowercase else "kept as typed"
            return f"queries are {folding}: {how}, {where}"
        if self.lowercase:
            return (
                "queries are lowercased: no word of these vectors has a capital letter "
                "(no record of their case folding came with them)"
            )
        return (
            "queries are kept as typed: these vectors hold words with capital letters "
            "(no record of their case folding came with them)"
        )

    def key(self, word: str) -> str | None:
        """The word of these vectors that ``word`` names (case-folded for lowercased vectors),
        or None."""
        if word in self.index:
            return word
        if self.lowercase and word.lower() in self.index:
            return word.lower()
        return None

    def row(self, word: str) -> int:
        """Row index of ``word``; raises :class:`UnknownWordError` naming it if absent."""
        return self.rows([word])[0]

    def rows(self, words: Iterable[str]) -> list[int]:
        """Row indices of ``words`` (see :meth:`key`); the error names every unknown word at
        once, with the nearest spellings these vectors know."""
        words = list(words)
        keys = [self.key(w) for w in words]
        missing = [w for w, k in zip(words, keys) if k is None]
        if missing:
            names = ", ".join(repr(w) for w in missing)
            suggestion, case_matters = self._suggest(missing)
            raise UnknownWordError(
                f"unknown word{'s' if len(missing) > 1 else ''} {names}: "
                f"not among the {len(self)} words of these vectors"
                + suggestion
                + (f" ({self.case_rule})" if case_matters else "")
            )
        return [self.index[k] for k in keys if k is not None]

    def _suggest(self, missing: Sequence[str]) -> tuple[str, bool]:
        """``"; did you mean 'king', 'kings'?"`` for the first missing word (or nothing), and
        whether case folding decided the answer (a missing word with capitals, or one known here
        in another case)."""
        import difflib

        word = missing[0].lower() if self.lowercase else missing[0]
        near = [w for w in self.words if abs(len(w) - len(word)) <= 2]
        other_case = [w for w in near if w.lower() == word.lower()]
        close = other_case + [
            w
            for w in difflib.get_close_matches(word, near, n=3, cutoff=0.75)
            if w not in other_case
        ]
        capitals = any(w != w.lower() for w in missing)
        text = f"; did you mean {', '.join(repr(w) for w in close[:3])}?" if close else ""
        return text, capitals or bool(other_case)

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of the vectors of words ``a`` and ``b``."""
        i, j = self.rows([a, b])
        return float(self.unit[i] @ self.unit[j])

    def most_similar(
        self,
        query: str | np.ndarray,
        k: int = 10,
        *,
        exclude: Iterable[str] = (),
    ) -> list[tuple[str, float]]:
        """The ``k`` words whose vectors have the highest cosine with ``query``.

        Args:
            query: a word (itself excluded from the answers) or a vector of shape ``(dim,)``.
            k: number of answers.
            exclude: words never returned.

        Returns:
            ``(word, cosine)`` pairs, best first.
        """
        excluded = self.rows(exclude)
        if isinstance(query, str):
            excluded.append(self.row(query))
            target = self.unit[excluded[-1]]
        else:
            target = np.asarray(query, dtype=np.float32)
            if target.shape != (self.dim,):
                raise ValueError(f"query vector has shape {target.shape}, expected ({self.dim},)")
            target = target / max(float(np.linalg.norm(target)), 1e-12)
        scores = self.unit @ target  # (n,)
        return self._top(scores, k, excluded)

    def analogy(
        self, a: str, b: str, c: str, k: int = 1, *, method: str = "3cosadd"
    ) -> list[tuple[str, float]]:
        """Answers to "``a`` is to ``b`` as ``c`` is to ?", best first, never ``a``, ``b`` or ``c``.

        ``3cosadd`` ranks words ``x`` by ``cos(x, b - a + c)`` (Mikolov et al. 2013);
        ``3cosmul`` by ``cos'(x, b) * cos'(x, c) / (cos'(x, a) + 0.001)`` with cosines shifted to
        ``[0, 1]`` as ``cos' = (cos + 1) / 2`` (Levy & Goldberg 2014).
        """
        rows = self.rows([a, b, c])
        scores = analogy_scores(self.unit, np.array([rows]), method=method)[0]
        return self._top(scores, k, rows)

    def _top(self, scores: np.ndarray, k: int, excluded: Sequence[int]) -> list[tuple[str, float]]:
        if k < 1:
            raise ValueError(f"k must be a positive number of answers, got {k}")
        scores = scores.copy()
        scores[list(excluded)] = -np.inf
        k = min(k, len(scores) - len(set(excluded)))
        if k <= 0:
            return []
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self.words[i], float(scores[i])) for i in top]

    def lowercased(self) -> WordVectors:
        """Vectors keyed by lowercased words; of several case variants the first row wins.

        Rows of trained vectors are most frequent first, so each lowercased word gets the vector
        of its most frequent spelling (the convention of gensim's ``case_insensitive``).
        """
        keep: dict[str, int] = {}
        for i, word in enumerate(self.words):
            keep.setdefault(word.lower(), i)
        return WordVectors(list(keep), self.vectors[list(keep.values())], lowercase=True)

    # ----------------------------------------------------------------------------- files

    def save(self, path: str | os.PathLike, *, format: str = "word2vec") -> None:
        """Write the vectors to ``path`` in ``format`` (one of ``FORMATS``).

        Text formats write each number with 9 significant digits, enough to read back the same
        float32 values. Vectors that know their case folding also write it to the sidecar
        ``path + ".rnnkit.json"`` (see the module docstring), after the vector file.
        """
        if format not in FORMATS:
            raise ValueError(f"unknown vector format {format!r}; expected one of {FORMATS}")
        for word in self.words:
            if " " in word or "\n" in word:
                raise ValueError(
                    f"word {word!r} contains a space or newline, which vector files cannot hold"
                )
        digest = hashlib.sha256()
        with atomic_open(path) as f:

            def write(chunk: bytes) -> None:
                f.write(chunk)
                digest.update(chunk)

            if format != "glove":
                write(f"{len(self)} {self.dim}\n".encode())
            if format == "word2vec-binary":
                values = self.vectors.astype("<f4")
                for word, row in zip(self.words, values):
                    write(word.encode("utf-8") + b" " + row.tobytes() + b"\n")
            else:
                for word, row in zip(self.words, self.vectors):
                    numbers = " ".join(f"{x:.9g}" for x in row.tolist())
                    write(f"{word} {numbers}\n".encode())
        if self.case_recorded:
            record = {"kind": CASE_RECORD_KIND, "lowercase": self.lowercase,
                      "sha256": digest.hexdigest()}  # fmt: skip
            write_text_atomic(case_record_path(path), json.dumps(record, indent=1) + "\n")

    @classmethod
    def load(
        cls, path: str | os.PathLike, *, format: str | None = None, encoding: str = "utf-8"
    ) -> WordVectors:
        """Read vectors from ``path``; ``format=None`` detects the format from the content.

        Raises:
            DataError: the file is empty or malformed; the message gives the line (or, in the
                binary format, the record) and what was wrong.
        """
        if format is not None and format not in FORMATS:
            raise ValueError(f"unknown vector format {format!r}; expected one of {FORMATS}")
        data = read_input_bytes(path, what="vector")
        if not data.strip():
            raise DataError(f"{path}: empty vector file")
        format = format or detect_format(data)
        if format == "word2vec-binary":
            words, matrix = _parse_binary(data, path, encoding)
        else:
            words, matrix = _parse_text(data, path, encoding, header=format == "word2vec")
        finite = np.isfinite(matrix).all(axis=1)
        if not finite.all():
            bad = int(np.argmin(finite))
            raise DataError(
                f"{path}: the vector of {words[bad]!r} (and {int((~finite).sum()) - 1} more) "
                "holds NaN or infinite values; retrain the vectors or remove those words"
            )
        record = case_record_path(path)
        vectors = cls(words, matrix, lowercase=read_case_record(record, data))
        if vectors.case_recorded:
            vectors.case_record = os.fspath(record)
        return vectors


def case_record_path(path: str | os.PathLike) -> Path:
    """The sidecar recording the case folding of the vector file ``path``."""
    return Path(os.fspath(path) + CASE_RECORD_SUFFIX)


def is_case_record(path: Path) -> bool:
    """Whether ``path`` is a case-folding sidecar rnnkit wrote (so rnnkit may replace it)."""
    return _read_record(path) is not None


def _read_record(path: Path) -> dict | None:
    try:
        if not path.is_file() or path.stat().st_size > 4096:
            return None
        record = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    ok = isinstance(record, dict) and record.get("kind") == CASE_RECORD_KIND
    return record if ok else None


def read_case_record(path: Path, data: bytes) -> bool | None:
    """The case folding the sidecar ``path`` records for a vector file holding ``data``: True
    (lowercased), False (case kept), or None when there is no sidecar or it describes other
    bytes (a warning says so and the folding is then detected)."""
    if not path.exists():
        return None
    record = _read_record(path)
    if record is None or not isinstance(record.get("lowercase"), bool):
        logger.warning("%s is not an rnnkit case record; ignoring it", path)
        return None
    if record.get("sha256") != hashlib.sha256(data).hexdigest():
        logger.warning(
            "%s was written for another version of the vector file; ignoring it and detecting "
            "the case folding from the words",
            path,
        )
        return None
    return record["lowercase"]


def analogy_scores(
    unit: np.ndarray, questions: np.ndarray, *, method: str = "3cosadd"
) -> np.ndarray:
    """Scores of every word as the answer to each question ``(a, b, c)``, shape ``(Q, n)``.

    Args:
        unit: unit-length vectors, shape ``(n, dim)``.
        questions: row indices ``(a, b, c)``, shape ``(Q, 3)``.
        method: ``"3cosadd"`` or ``"3cosmul"`` (see :meth:`WordVectors.analogy`).
    """
    if method not in ANALOGY_METHODS:
        raise ValueError(f"unknown analogy method {method!r}; expected one of {ANALOGY_METHODS}")
    a, b, c = unit[questions[:, 0]], unit[questions[:, 1]], unit[questions[:, 2]]  # (Q, dim)
    if method == "3cosadd":
        target = b - a + c
        target /= np.maximum(np.linalg.norm(target, axis=1, keepdims=True), 1e-12)
        return target @ unit.T
    cos_a, cos_b, cos_c = ((m @ unit.T + 1.0) / 2.0 for m in (a, b, c))  # (Q, n), in [0, 1]
    return cos_b * cos_c / (cos_a + 1e-3)


def looks_like_vectors(path: str | os.PathLike) -> bool:
    """Whether the file ``path`` starts like a vector file (a word2vec header, or a GloVe line of
    a word and numbers): one rnnkit may replace (see :func:`rnnkit.files.check_output_file`)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(1 << 16)
    except OSError:
        return False
    first, _, rest = head.partition(b"\n")
    if detect_format(head) == "glove":
        word, *values = first.rstrip(b"\r ").split(b" ")
        try:
            return bool(word) and bool(values) and all(float(v) or True for v in values)
        except ValueError:
            return False
    return bool(rest)


def detect_format(data: bytes) -> str:
    """``"word2vec"``, ``"word2vec-binary"`` or ``"glove"``, judged from a file's content.

    A first line of two integers is a word2vec header; the file is text if the next line splits
    into a word and numbers (how many is checked when parsing), binary otherwise. Anything else
    is GloVe.
    """
    first, _, rest = data.partition(b"\n")
    parts = first.split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return "glove"
    second = rest.partition(b"\n")[0].rstrip(b"\r ").split(b" ")
    try:
        [float(x) for x in second[1:]]
    except ValueError:
        return "word2vec-binary"
    return "word2vec" if len(second) > 1 else "word2vec-binary"


def _parse_text(
    data: bytes, path: str | os.PathLike, encoding: str, *, header: bool
) -> tuple[list[str], np.ndarray]:
    lines = data.split(b"\n")
    if lines and not lines[-1].strip():
        lines.pop()
    count = dim = None
    start = 0
    if header:
        count, dim = _parse_header(lines[0], path)
        start = 1
    words: list[str] = []
    rows: list[np.ndarray] = []
    for number, raw in enumerate(lines[start:], start=start + 1):
        try:
            line = raw.decode(encoding).rstrip("\r ")
        except UnicodeDecodeError as exc:
            # Text in another encoding has no NUL bytes; a file with them is no vector file.
            hint = "" if b"\0" in data else "name the file's encoding with --encoding, or "
            raise DataError(
                f"{path}, line {number}: not valid {encoding} text ({exc.reason}); {hint}give a "
                "word2vec (text or binary) or GloVe vector file"
            ) from None
        word, *values = line.split(" ")
        if not word or not values:
            raise DataError(f"{path}, line {number}: expected a word and its numbers, got {line!r}")
        if dim is None:
            dim = len(values)
        if len(values) != dim:
            raise DataError(
                f"{path}, line {number}: mismatched dimensions: {word!r} has {len(values)} "
                f"values, expected {dim}"
            )
        try:
            rows.append(np.array(values, dtype=np.float32))
        except ValueError:
            raise DataError(f"{path}, line {number}: a value of {word!r} is not a number") from None
        words.append(word)
    if count is not None and count != len(words):
        raise DataError(f"{path}: header says {count} words but the file has {len(words)}")
    return _deduplicate(words, rows, path, dim or 0)


def _parse_binary(
    data: bytes, path: str | os.PathLike, encoding: str
) -> tuple[list[str], np.ndarray]:
    first, _, _ = data.partition(b"\n")
    count, dim = _parse_header(first, path)
    pos = len(first) + 1
    size = 4 * dim
    words: list[str] = []
    rows: list[np.ndarray] = []
    for record in range(1, count + 1):
        while pos < len(data) and data[pos : pos + 1] == b"\n":
            pos += 1
        end = data.find(b" ", pos)
        if end < 0 or end + 1 + size > len(data):
            raise DataError(
                f"{path}: binary record {record} of {count} is truncated; the header promises "
                f"{count} vectors of {dim} float32 values"
            )
        try:
            word = data[pos:end].decode(encoding)
        except UnicodeDecodeError:
            raise DataError(
                f"{path}, binary record {record}: word is not valid {encoding}; name the "
                "file's encoding with --encoding"
            ) from None
        if not word:
            raise DataError(f"{path}, binary record {record}: empty word")
        words.append(word)
        rows.append(np.frombuffer(data, dtype="<f4", count=dim, offset=end + 1))
        pos = end + 1 + size
    if data[pos:].strip():
        raise DataError(
            f"{path}: data after the {count} records the header promises (mismatched dimensions "
            f"or word count in the header?)"
        )
    return _deduplicate(words, rows, path, dim)


def _parse_header(line: bytes, path: str | os.PathLike) -> tuple[int, int]:
    parts = line.split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise DataError(f"{path}, line 1: expected a header '<words> <dim>', got {line[:80]!r}")
    count, dim = int(parts[0]), int(parts[1])
    if dim < 1:
        raise DataError(f"{path}, line 1: the header gives dimension {dim}; expected at least 1")
    return count, dim


def _deduplicate(
    words: list[str], rows: list[np.ndarray], path: str | os.PathLike, dim: int
) -> tuple[list[str], np.ndarray]:
    matrix = np.stack(rows).astype(np.float32) if rows else np.zeros((0, dim), np.float32)
    if len(set(words)) == len(words):
        return words, matrix
    first: dict[str, int] = {}
    for i, word in enumerate(words):
        first.setdefault(word, i)
    logger.warning(
        "%s: %d duplicate words; keeping the first of each", path, len(words) - len(first)
    )
    return list(first), matrix[list(first.values())]
