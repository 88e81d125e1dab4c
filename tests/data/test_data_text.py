import unicodedata

import pytest

from rnnkit.data.text import canonical_text, words


def test_ascii_text_comes_back_unchanged():
    text = 'It\'s a "quoted" line - with_underscores, tabs\tand 3 digits.\n'
    assert canonical_text(text) is text


def test_one_spelling_per_character_and_apostrophe():
    decomposed = unicodedata.normalize("NFD", "café naïve")
    assert len(decomposed) == len("café naïve") + 2
    assert canonical_text(decomposed) == "café naïve"
    typographic = "don\u2019t \u2018quote\u2019 \u201cdouble\u201d"
    assert canonical_text(typographic) == "don't 'quote' \"double\""
    assert canonical_text("self\u2010made \u22121") == "self-made -1"
    assert canonical_text("\ufeffzero\u200bwidth") == "zerowidth"
    # the joiners spell Persian and Indic words, and compatibility forms keep their meaning
    assert canonical_text("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645") == (
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"
    )
    assert canonical_text("x\u00b2 \ufb01le") == "x\u00b2 \ufb01le"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("A man's DOG, running!", ["a", "man's", "dog", "running"]),
        ("Un café près de l\u2019église", ["un", "café", "près", "de", "l'église"]),
        ("snake_case -- 'quoted' words", ["snake", "case", "quoted", "words"]),
        ("Straße ΟΔΟΣ", ["straße", "οδος"]),  # lower-cased, not case-folded
        ("हिंदी में", ["हिंदी", "में"]),  # vowel signs are marks, not separators
        ("3 red circles", ["3", "red", "circles"]),
        ("e\u0301te\u0301", ["été"]),
    ],
)
def test_words_of_any_script(text, expected):
    assert words(text) == expected
