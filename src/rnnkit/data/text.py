"""Unicode text as the applications compare it: one spelling per word, in any script.

Users' files arrive in whatever form an editor or a word processor left them: "café" as one
code point or as ``e`` plus a combining accent, "don’t" with a typographic apostrophe where a
corpus elsewhere has ``'``. :func:`canonical_text` maps these to one form, so a model sees the
same characters for the same word; :func:`words` cuts lower-cased text into words of letters,
marks and digits of any script (the caption tokenizer).

What :func:`canonical_text` changes (and nothing else):

* Unicode NFC: composed characters ("e" + U+0301 becomes "é"); compatibility forms (ligatures,
  full-width letters, superscripts) are kept, since NFKC would change what a text says
  ("x²" to "x2").
* apostrophe look-alikes to ``'``: ‘ ’ ‛ (U+2018, U+2019, U+201B), ʼ (U+02BC), ′ (U+2032),
  ＇ (U+FF07);
* double-quote look-alikes to ``"``: “ ” „ ‟ (U+201C-U+201F), ″ (U+2033), ＂ (U+FF02);
* hyphen look-alikes to ``-``: U+2010 hyphen, U+2011 non-breaking hyphen, U+2212 minus sign;
* zero-width spaces and stray byte-order marks (U+200B, U+FEFF) are dropped (U+200C and U+200D,
  the joiners, spell words in Persian and Indic scripts and stay).

ASCII text comes back unchanged. Torch-free.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata

_LOOKALIKES = str.maketrans(
    {
        **dict.fromkeys("\u2018\u2019\u201b\u02bc\u2032\uff07", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\uff02", '"'),
        **dict.fromkeys("\u2010\u2011\u2212", "-"),
        **dict.fromkeys("\u200b\ufeff", None),
    }
)


def canonical_text(text: str) -> str:
    """``text`` in Unicode NFC with apostrophe, quote and hyphen look-alikes in ASCII (see the
    module docstring); ASCII text is returned as it is."""
    if text.isascii():
        return text
    return unicodedata.normalize("NFC", text).translate(_LOOKALIKES)


# A word of ASCII text: letters and digits, with inner apostrophes (don't, o'er). On lower-cased
# ASCII text ``[^\W_]`` is exactly [a-z0-9], the caption tokenizer's class before it read Unicode.
_ASCII_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


@functools.cache
def _unicode_word() -> re.Pattern[str]:
    """The same pattern with combining marks as word characters: ``\\w`` alone cuts Hindi
    "हिंदी" (its vowel signs are marks) and the "i̇" that lower-casing "İ" gives. Python's ``re``
    has no ``\\p{M}``, so the class is built once from the Unicode database (~0.3 s)."""
    ranges, start = [], None
    for code in range(sys.maxunicode + 2):
        mark = code <= sys.maxunicode and unicodedata.category(chr(code)).startswith("M")
        if mark and start is None:
            start = code
        elif not mark and start is not None:
            ranges.append(f"\\U{start:08x}-\\U{code - 1:08x}")
            start = None
    char = f"(?:[^\\W_]|[{''.join(ranges)}])"
    return re.compile(f"{char}+(?:'{char}+)*")


def words(text: str) -> list[str]:
    """The words of ``text`` after :func:`canonical_text` and ``str.lower``: runs of letters,
    combining marks and digits of any script, joined by single inner apostrophes ("don't");
    everything else (punctuation, underscores, symbols) separates words.

    ``str.lower`` and not ``str.casefold``: casefolding is for caseless matching and rewrites
    letters ("straße" to "strasse", final "ς" to "σ"), so a model would learn, and write, words
    spelled as no text spells them; lower-casing only drops the capitals."""
    text = canonical_text(text).lower()
    pattern = _ASCII_WORD if text.isascii() else _unicode_word()
    return pattern.findall(text)
