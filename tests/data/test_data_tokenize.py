import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnnkit.data.tokenize import BOS, EOS, PAD, UNK, Vocab, get_tokenizer
from rnnkit.errors import DataError


@given(st.text())
def test_char_tokenizer_round_trips_any_text(text):
    tok = get_tokenizer("char")
    assert tok.detokenize(tok.tokenize(text)) == text


def test_word_tokenizer_splits_words_punctuation_and_newlines():
    tok = get_tokenizer("word")
    tokens = tok.tokenize("To be, or not to be: that's it!\nO'er (all).")
    assert tokens == ["To", "be", ",", "or", "not", "to", "be", ":", "that's", "it", "!", "\n"] + [
        "O'er",
        "(",
        "all",
        ")",
        ".",
    ]
    assert tok.detokenize(tokens) == "To be, or not to be: that's it!\nO'er (all)."


def test_word_tokenizer_options():
    assert get_tokenizer("word", lowercase=True).tokenize("The END") == ["the", "end"]
    assert get_tokenizer("word", keep_newlines=False).tokenize("a\nb") == ["a", "b"]
    with pytest.raises(ValueError, match="'byte'"):
        get_tokenizer("byte")


def test_vocab_puts_specials_first_then_most_frequent():
    vocab = Vocab.build("abbccc", specials=[UNK, PAD])
    assert vocab.itos == [UNK, PAD, "c", "b", "a"]
    assert (vocab.unk_index, vocab.pad_index, vocab.bos_index, vocab.eos_index) == (
        0,
        1,
        None,
        None,
    )
    assert vocab.encode("cab") == [2, 4, 3]
    assert vocab.decode([2, 4, 3]) == ["c", "a", "b"]


def test_vocab_min_freq_and_max_size():
    assert Vocab.build("abbccc", min_freq=2).itos == [UNK, "c", "b"]
    assert Vocab.build("abbccc", max_size=1).itos == [UNK, "c"]
    with pytest.raises(ValueError, match="min_freq"):
        Vocab.build("a", min_freq=0)


def test_unknown_tokens_map_to_unk_or_are_named():
    vocab = Vocab.build("abc")
    assert vocab.encode("axb") == [vocab.stoi["a"], 0, vocab.stoi["b"]]
    with pytest.raises(DataError, match="'x', 'y'"):
        vocab.encode("axyx", strict=True)
    no_unk = Vocab("abc", specials=[])
    with pytest.raises(DataError, match="'z'"):
        no_unk.encode("z")
    assert vocab.unknown("zaz") == ["z"]


def test_vocab_json_round_trip(tmp_path):
    vocab = Vocab.build("hello world", specials=[UNK, BOS, EOS, PAD])
    path = tmp_path / "vocab.json"
    vocab.save(path)
    loaded = Vocab.load(path)
    assert loaded == vocab
    assert loaded.eos_index == 2


def test_vocab_load_rejects_other_json(tmp_path):
    path = tmp_path / "v.json"
    path.write_text('{"tokens": []}')
    with pytest.raises(DataError, match="not an rnnkit vocabulary"):
        Vocab.load(path)
    path.write_text("{oops")
    with pytest.raises(DataError, match="not valid JSON"):
        Vocab.load(path)


def test_duplicate_specials_are_refused():
    with pytest.raises(ValueError, match="distinct"):
        Vocab("ab", specials=[UNK, UNK])
