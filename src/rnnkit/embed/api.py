"""Word embeddings end to end: train vectors on a corpus, load them, query them, evaluate them.
The Python API that ``rnnkit embed``, ``benchmarks/embeddings.py`` and the docs call.

Example::

    from rnnkit.embed import api
    from rnnkit.embed.recipe import Word2VecConfig

    vectors = api.train("vectors.txt", Word2VecConfig(epochs=5), data="my.txt")
    print(api.similar(api.load("vectors.txt"), "king", k=5))

Word vectors are one file (word2vec text/binary or GloVe), not a run directory: they are the
product, read by other tools, and by ``rnnkit lm/translate train --embeddings``.
"""

from __future__ import annotations

import os
from typing import Any

from rnnkit.embed.recipe import DEFAULT_DATA, Word2VecConfig
from rnnkit.embed.vectors import WordVectors, case_record_path, is_case_record, looks_like_vectors
from rnnkit.files import check_output_file


def train(
    out: str | os.PathLike,
    recipe: Word2VecConfig | None = None,
    *,
    data: str = DEFAULT_DATA,
    encoding: str = "utf-8",
    lowercase: bool = True,
    format: str = "word2vec",
    progress: bool = False,
    force: bool = False,
) -> WordVectors:
    """Train word vectors on the corpus ``data`` and save them to ``out``; returns them.

    Args:
        out: the vector file to write.
        recipe: the word2vec settings (default: ``Word2VecConfig()``).
        data: corpus name or text file.
        encoding: encoding of a text file.
        lowercase: fold the text to lower case first.
        format: ``"word2vec"``, ``"word2vec-binary"`` or ``"glove"``.
        progress: show a progress bar.
        force: replace ``out`` even if it exists and is not a vector file. Never replaced: an
            input (``data``) or a file inside a run directory.

    The file is written atomically: a kill or a full disk leaves the previous ``out`` intact.
    Whether the text was lowercased is recorded beside it, in ``out + ".rnnkit.json"``, so
    queries against the file are folded the same way (see :mod:`rnnkit.embed.vectors`).
    """
    from rnnkit.data.datasets import load_corpus
    from rnnkit.embed.train import tokenize_corpus, train_word_vectors

    recipe = recipe or Word2VecConfig()
    recipe.validate()
    check_output_file(out, inputs=[data], force=force, ours=looks_like_vectors, what="vector file")
    check_output_file(
        case_record_path(out), inputs=[data], force=force, ours=is_case_record,
        what="case record of a vector file",
    )  # fmt: skip
    sentences = tokenize_corpus(load_corpus(data, encoding=encoding), lowercase=lowercase)
    trained = train_word_vectors(sentences, recipe, progress=progress)
    vectors = WordVectors(trained.words, trained.vectors, lowercase=lowercase)
    vectors.save(out, format=format)
    return vectors


def load(path: str | os.PathLike, *, encoding: str = "utf-8") -> WordVectors:
    """The word vectors in ``path`` (word2vec text/binary or GloVe; the format is detected; the
    words in ``encoding``)."""
    return WordVectors.load(path, encoding=encoding)


def load_vectors(path: str | os.PathLike | None) -> WordVectors | None:
    """The word vectors in ``path``, or None when no file is given (``--embeddings`` unset)."""
    return None if path is None else WordVectors.load(path)


def similar(vectors: WordVectors, word: str, k: int = 10) -> list[tuple[str, float]]:
    """The ``k`` nearest words to ``word`` by cosine similarity."""
    return vectors.most_similar(word, k)


def analogy(
    vectors: WordVectors, a: str, b: str, c: str, k: int = 5, *, method: str = "3cosadd"
) -> list[tuple[str, float]]:
    """The ``k`` best answers to ``a : b :: c : ?``."""
    return vectors.analogy(a, b, c, k, method=method)


def evaluate(vectors: WordVectors, *, method: str = "3cosadd") -> dict[str, Any]:
    """Analogy accuracy and WordSim-353 / SimLex-999 correlations on the standard sets (read from
    the gensim package: ``pip install 'rnnkit[embeddings]'``)."""
    from rnnkit.embed.evaluate import evaluate_standard

    return evaluate_standard(vectors, method=method)
