"""Tokenizers (text -> tokens -> text) and the :class:`Vocab` (tokens <-> integer ids).

Two tokenizers, chosen by level name with :func:`get_tokenizer`:

- ``"char"``: every character is a token; ``detokenize`` is exact (``"".join``).
- ``"word"``: words (letters/digits with inner apostrophes, ``don't``), single punctuation marks,
  and newlines as tokens of their own; ``detokenize`` re-joins them with spaces, without a space
  before closing punctuation or around newlines. Other whitespace is not kept.

A :class:`Vocab` holds its special tokens explicitly (``<unk>``, and ``<bos>``, ``<eos>``,
``<pad>`` where a task needs them): they come first, in the order given, then the ordinary
tokens. It saves and loads as JSON. Example::

    tok = get_tokenizer("word")
    vocab = Vocab.build(tok.tokenize(text), specials=[UNK])
    ids = vocab.encode(tok.tokenize("To be, or not to be"))
    vocab.save("vocab.json"); Vocab.load("vocab.json") == vocab
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from rnnkit.errors import DataError
from rnnkit.files import write_text_atomic

UNK = "<unk>"  # stands for any token outside the vocabulary
BOS = "<bos>"  # start of a sequence
EOS = "<eos>"  # end of a sequence
PAD = "<pad>"  # filler in padded batches

VOCAB_FORMAT = "rnnkit-vocab"
VOCAB_FORMAT_VERSION = 1


class Tokenizer(Protocol):
    """What a tokenizer offers: a level name, text -> tokens, tokens -> text."""

    level: str

    def tokenize(self, text: str) -> list[str]: ...

    def detokenize(self, tokens: Iterable[str]) -> str: ...


class CharTokenizer:
    """Every character is one token."""

    level = "char"

    def tokenize(self, text: str) -> list[str]:
        """The characters of ``text``."""
        return list(text)

    def detokenize(self, tokens: Iterable[str]) -> str:
        """The characters joined back together (exact inverse of :meth:`tokenize`)."""
        return "".join(tokens)


# A word (with inner apostrophes: don't, o'er), a newline, or any single other non-space character.
_WORD_RE = re.compile(r"\w+(?:['\u2019]\w+)*|\n|[^\w\s]")
_NO_SPACE_BEFORE = set(".,;:!?)]}'\"\u2019\n")
_NO_SPACE_AFTER = set("([{\n")


class WordTokenizer:
    """Words, punctuation marks and newlines as tokens.

    Args:
        lowercase: fold tokens to lower case (a smaller vocabulary; the text loses its capitals).
        keep_newlines: keep ``"\\n"`` as a token, so generated text has line breaks.
    """

    level = "word"

    def __init__(self, *, lowercase: bool = False, keep_newlines: bool = True) -> None:
        self.lowercase = lowercase
        self.keep_newlines = keep_newlines

    def tokenize(self, text: str) -> list[str]:
        """The tokens of ``text``; spaces and tabs separate tokens and are dropped."""
        if self.lowercase:
            text = text.lower()
        tokens = _WORD_RE.findall(text)
        if not self.keep_newlines:
            tokens = [t for t in tokens if t != "\n"]
        return tokens

    def detokenize(self, tokens: Iterable[str]) -> str:
        """Tokens joined by single spaces, none before closing punctuation or around newlines."""
        out: list[str] = []
        prev = "\n"
        for token in tokens:
            if out and token[:1] not in _NO_SPACE_BEFORE and prev[-1:] not in _NO_SPACE_AFTER:
                out.append(" ")
            out.append(token)
            prev = token
        return "".join(out)


TOKENIZER_LEVELS = ("char", "word")


def get_tokenizer(level: str, **options: Any) -> Tokenizer:
    """The tokenizer for ``level`` (``"char"`` or ``"word"``); options go to its constructor."""
    if level == "char":
        return CharTokenizer(**options)
    if level == "word":
        return WordTokenizer(**options)
    raise ValueError(f"unknown tokenizer level {level!r}; expected one of {TOKENIZER_LEVELS}")


class Vocab:
    """A fixed list of tokens, each with an integer id: special tokens first, then the others.

    Args:
        tokens: the ordinary tokens, in id order (duplicates and specials are skipped).
        specials: special tokens such as ``UNK``, ``BOS``, ``EOS``, ``PAD``; they get ids 0, 1, ...
    """

    def __init__(self, tokens: Iterable[str], *, specials: Sequence[str] = (UNK,)) -> None:
        if len(set(specials)) != len(specials):
            raise ValueError(f"specials must be distinct, got {list(specials)}")
        self.specials: tuple[str, ...] = tuple(specials)
        self.itos: list[str] = list(self.specials)
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}
        for token in tokens:
            if token not in self.stoi:
                self.stoi[token] = len(self.itos)
                self.itos.append(token)

    @classmethod
    def build(
        cls,
        tokens: Iterable[str],
        *,
        specials: Sequence[str] = (UNK,),
        min_freq: int = 1,
        max_size: int | None = None,
    ) -> Vocab:
        """A vocabulary of the tokens seen in ``tokens``, most frequent first.

        Args:
            tokens: a token stream (e.g. the tokenized training text).
            specials: special tokens, placed first.
            min_freq: drop tokens seen fewer times (they become ``<unk>``).
            max_size: keep at most this many ordinary tokens (the most frequent).
        """
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        if max_size is not None and max_size < 1:
            raise ValueError(f"max_size must be >= 1 or None, got {max_size}")
        counts = Counter(tokens)
        # Most frequent first; ties broken by the token itself so the order is reproducible.
        ranked = sorted(
            (t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t)
        )
        if max_size is not None:
            ranked = ranked[:max_size]
        return cls(ranked, specials=specials)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: object) -> bool:
        return token in self.stoi

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and (self.itos, self.specials) == (
            other.itos,
            other.specials,
        )

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, specials={list(self.specials)})"

    def _special_index(self, token: str) -> int | None:
        return self.stoi[token] if token in self.specials else None

    @property
    def unk_index(self) -> int | None:
        """Id of ``<unk>``, or ``None`` if this vocabulary has no ``<unk>``."""
        return self._special_index(UNK)

    @property
    def pad_index(self) -> int | None:
        """Id of ``<pad>``, or ``None``."""
        return self._special_index(PAD)

    @property
    def bos_index(self) -> int | None:
        """Id of ``<bos>``, or ``None``."""
        return self._special_index(BOS)

    @property
    def eos_index(self) -> int | None:
        """Id of ``<eos>``, or ``None``."""
        return self._special_index(EOS)

    def unknown(self, tokens: Iterable[str]) -> list[str]:
        """The distinct tokens of ``tokens`` that are not in the vocabulary, in first-seen order."""
        return list(dict.fromkeys(t for t in tokens if t not in self.stoi))

    def encode(self, tokens: Iterable[str], *, strict: bool = False) -> list[int]:
        """Ids of ``tokens``. Unknown tokens map to ``<unk>``; with ``strict`` (or no ``<unk>`` in
        the vocabulary) they raise :class:`DataError` naming them."""
        tokens = list(tokens)
        unk = self.unk_index
        if strict or unk is None:
            missing = self.unknown(tokens)
            if missing:
                shown = ", ".join(repr(t) for t in missing[:20])
                more = f" and {len(missing) - 20} more" if len(missing) > 20 else ""
                raise DataError(f"not in the vocabulary: {shown}{more}")
        return [self.stoi.get(t, unk) for t in tokens]  # type: ignore[misc]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of ``ids``."""
        return [self.itos[int(i)] for i in ids]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description (see :meth:`from_dict`)."""
        return {
            "format": VOCAB_FORMAT,
            "version": VOCAB_FORMAT_VERSION,
            "specials": list(self.specials),
            "tokens": self.itos[len(self.specials) :],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Vocab:
        """The vocabulary described by ``data`` (as written by :meth:`to_dict`)."""
        if not isinstance(data, dict) or data.get("format") != VOCAB_FORMAT:
            raise DataError("not an rnnkit vocabulary (missing 'format': 'rnnkit-vocab')")
        if data.get("version") != VOCAB_FORMAT_VERSION:
            raise DataError(f"vocabulary format version {data.get('version')} is not supported")
        return cls(data["tokens"], specials=data["specials"])

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary as JSON to ``path`` (atomically)."""
        write_text_atomic(Path(path), json.dumps(self.to_dict(), ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocab:
        """Read a vocabulary written by :meth:`save`."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
        return cls.from_dict(data)
