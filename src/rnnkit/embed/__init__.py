"""Word embeddings: train, load and save, query, evaluate, and initialise models with them.

Example::

    from rnnkit.embed import WordVectors, Word2VecConfig, train_word_vectors

    vectors = train_word_vectors(sentences, Word2VecConfig(model="sgns", epochs=5))
    vectors.save("vectors.txt")                      # word2vec text format
    vectors = WordVectors.load("vectors.txt")        # format detected from the content
    vectors.most_similar("king", k=5)
    vectors.analogy("man", "king", "woman")          # man : king :: woman : ?

Only training and :func:`load_into_embedding` need torch; they are imported on first use.
"""

from rnnkit.embed.evaluate import (
    STANDARD_SETS,
    AnalogyScore,
    SimilarityScore,
    evaluate_analogies,
    evaluate_similarity,
    evaluate_standard,
    standard_set_path,
)
from rnnkit.embed.recipe import MODELS, Word2VecConfig
from rnnkit.embed.vectors import FORMATS, UnknownWordError, WordVectors

__all__ = [
    "FORMATS",
    "MODELS",
    "STANDARD_SETS",
    "AnalogyScore",
    "SimilarityScore",
    "UnknownWordError",
    "Word2VecConfig",
    "WordVectors",
    "evaluate_analogies",
    "evaluate_similarity",
    "evaluate_standard",
    "standard_set_path",
    "load_into_embedding",
    "train_word_vectors",
]


def __getattr__(name: str):  # noqa: ANN202 (PEP 562: import the torch parts on first use)
    if name == "train_word_vectors":
        from rnnkit.embed.train import train_word_vectors

        return train_word_vectors
    if name == "load_into_embedding":
        from rnnkit.embed.pretrained import load_into_embedding

        return load_into_embedding
    raise AttributeError(f"module 'rnnkit.embed' has no attribute {name!r}")
