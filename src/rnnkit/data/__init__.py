"""Text in, tensors out: corpora (:mod:`.datasets`), tokenizers and vocabularies
(:mod:`.tokenize`), and language-model batches (:mod:`.batching`, imports torch).

``from rnnkit.data import load_corpus, split_text, Vocab, get_tokenizer`` does not import torch.
"""

from rnnkit.data.datasets import (
    CORPORA,
    DEFAULT_CORPUS,
    SHAKESPEARE,
    RegistryCorpus,
    TextSplits,
    cache_dir,
    load_corpus,
    read_text_file,
    split_text,
)
from rnnkit.data.tokenize import (
    BOS,
    EOS,
    PAD,
    UNK,
    CharTokenizer,
    Tokenizer,
    Vocab,
    WordTokenizer,
    get_tokenizer,
)

__all__ = [
    "BOS",
    "CORPORA",
    "DEFAULT_CORPUS",
    "EOS",
    "PAD",
    "SHAKESPEARE",
    "UNK",
    "CharTokenizer",
    "RegistryCorpus",
    "TextSplits",
    "Tokenizer",
    "Vocab",
    "WordTokenizer",
    "cache_dir",
    "get_tokenizer",
    "load_corpus",
    "read_text_file",
    "split_text",
]
