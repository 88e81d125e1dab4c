"""Fixtures shared by the whole suite (tests mirror src/rnnkit: tests/nn, tests/lm, ...).

- ``run_cli``: runs ``rnnkit ARGS...`` in-process; returns ``(exit code, stdout, stderr)``.
- ``write_text_corpus``: writes a small generated text (a few words in random order).
- ``write_parallel_corpus``: writes a small generated ``source<TAB>target`` corpus.
- ``encoding_advice``: what the one-line error says about a user's file in another encoding.

Everything is generated from a seed: no test needs the network.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from rnnkit import cli

WORDS = ["to", "be", "or", "not", "that", "is", "the", "question"]


@pytest.fixture
def run_cli(capsys) -> Callable[..., tuple[int, str, str]]:
    """``run_cli(*argv)``: ``rnnkit`` with ``argv`` (any objects, made strings) in-process."""

    def run(*argv: object) -> tuple[int, str, str]:
        capsys.readouterr()  # drop what came before
        code = cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def text_corpus(path: Path, n: int = 3000, seed: int = 0) -> Path:
    """About ``n`` characters of WORDS in random order with spaces and line breaks."""
    rng = random.Random(seed)
    text = "".join(rng.choice(WORDS) + rng.choice([" ", " ", "\n"]) for _ in range(n // 4))
    path.write_text(text)
    return path


def parallel_corpus(path: Path, n: int = 400, seed: int = 0) -> Path:
    """``n`` pairs: a few words and a placeholder -> the same reversed, words upper-cased."""
    from rnnkit.translate.data import toy_pairs

    lines = [f"{source}\t{target}" for source, target in toy_pairs(n, seed)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def write_text_corpus() -> Callable[..., Path]:
    """``write_text_corpus(path, n=3000, seed=0)`` -> path (see :func:`text_corpus`)."""
    return text_corpus


@pytest.fixture(scope="session")
def write_parallel_corpus() -> Callable[..., Path]:
    """``write_parallel_corpus(path, n=400, seed=0)`` -> path (see :func:`parallel_corpus`)."""
    return parallel_corpus


def advice_for(kind: str) -> str:
    """What the one-line error about a file in ``kind`` read as UTF-8 says: latin-1 or cp1252
    (not valid UTF-8), or utf-16-le / utf-16-be without a byte-order mark."""
    if kind.startswith("utf-16"):
        return f"looks like UTF-16 without a byte-order mark; give --encoding {kind} or save it"
    return "is not valid utf-8 text (line "


@pytest.fixture(scope="session")
def encoding_advice() -> Callable[[str], str]:
    """``encoding_advice(kind)`` -> the words of the error (see :func:`advice_for`)."""
    return advice_for
