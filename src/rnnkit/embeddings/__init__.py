"""Word embeddings: train, load and save, query, evaluate, and initialise models with them.

Example::

    from rnnkit.embeddings import WordVectors, Word2VecConfig, train_word_vectors

    vectors = train_word_vectors(sentences, Word2VecConfig(model="sgns", epochs=5))
    vectors.save("vectors.txt")                      # word2vec text format
    vectors = WordVectors.load("vectors.txt")        # format detected from the content
    vectors.most_similar("king", k=5)
    vectors.analogy("man", "king", "woman")          # man : king :: woman : ?
"""

from rnnkit.embeddings.evaluate import (
    STANDARD_SETS,
    AnalogyScore,
    SimilarityScore,
    evaluate_analogies,
    evaluate_similarity,
    evaluate_standard,
    standard_set_path,
)
from rnnkit.embeddings.train import MODELS, Word2VecConfig, train_word_vectors
from rnnkit.embeddings.vectors import FORMATS, UnknownWordError, WordVectors

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
    "train_word_vectors",
]
