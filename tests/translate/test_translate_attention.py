import pytest
import torch

from rnnkit import translate
from rnnkit.data.tokenize import Vocab
from rnnkit.errors import ConfigError
from rnnkit.translate import TranslateRecipe, Translator
from rnnkit.translate.data import SPECIALS
from rnnkit.translate.model import Seq2Seq, Seq2SeqConfig

WORDS = ["red", "green", "blue", "cat", "dog"]


def untrained(attention: str = "additive") -> Translator:
    torch.manual_seed(0)
    source = Vocab(WORDS, specials=SPECIALS)
    target = Vocab([w.upper() for w in WORDS], specials=SPECIALS)
    config = Seq2SeqConfig(
        len(source), len(target), embedding_dim=8, hidden_size=8, attention=attention
    )
    return Translator(Seq2Seq(config), source, target, TranslateRecipe(max_len=4))


def test_each_hypothesis_of_the_n_best_list_comes_with_its_own_attention():
    translator = untrained()
    text = "red cat blue"
    found = translate.translate_with_attention(translator, text, beam_size=4, n_best=3)
    plain = translator.translate([text], beam_size=4, n_best=3)[0]
    assert [a.translation for a in found] == plain and len(found) == 3
    for attended in found:
        assert attended.source == ["red", "cat", "blue"]
        assert attended.target == [*attended.translation.tokens, "<eos>"]
        assert attended.weights.shape == (len(attended.target), 3)
        assert torch.allclose(attended.weights.sum(-1), torch.ones(len(attended.target)))
    # The best one's attention is what Translator.attention shows for it.
    source, target, weights = translator.attention(text, beam_size=4)
    assert (source, target) == (found[0].source, found[0].target)
    assert torch.allclose(weights, found[0].weights)


def test_a_model_without_attention_says_so():
    with pytest.raises(ConfigError, match="no attention"):
        translate.translate_with_attention(untrained("none"), "red cat")
