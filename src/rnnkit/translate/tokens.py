"""Translation's tokenizer: words, punctuation and printf placeholders, reversibly.

``tokenize`` splits text into word, punctuation and printf-placeholder tokens; CJK characters are
tokens of their own, so Chinese is tokenised by character. Tokens glued to the previous one (no
space in between) carry the prefix ``JOINER``, which makes ``detokenize(tokenize(s))`` give back
``s`` up to whitespace runs. ``placeholders`` lists a text's printf placeholders (what
``rnnkit translate eval`` checks are kept).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# A printf conversion: %s, %d, %%, %.*s, %1$s, %-10s, %lu, %<PRIuMAX> (gettext's portable form),
# optionally wrapped in single quotes ('%s') as git's messages often write it.
_CONVERSION = (
    r"%(?:\d+\$)?[-+ #0']*(?:\*|\d+)?(?:\.(?:\*|\d+))?"
    r"(?:<PRI[a-zA-Z0-9_]+>|(?:hh|h|ll|l|L|z|j|t|q)?[diouxXeEfFgGcspn%])"
)
PLACEHOLDER = re.compile(rf"'{_CONVERSION}'|{_CONVERSION}")
_CJK = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
_TOKEN = re.compile(rf"{PLACEHOLDER.pattern}|[{_CJK}]|[^\W{_CJK}]+|\S")
# Marks a token written directly after the previous one, with no space (OpenNMT's joiner sign).
JOINER = "\uffed"


def tokenize(text: str) -> list[str]:
    """Split ``text`` into tokens, keeping printf placeholders (``'%s'``, ``%1$d``) whole.

    A token that follows the previous one without whitespace starts with ``JOINER``.
    """
    tokens = []
    end = 0
    for match in _TOKEN.finditer(text):
        token = match.group()
        tokens.append(JOINER + token if tokens and match.start() == end else token)
        end = match.end()
    return tokens


def detokenize(tokens: Sequence[str]) -> str:
    """Inverse of ``tokenize``: join tokens with single spaces except where marked as glued."""
    parts = []
    for token in tokens:
        if token.startswith(JOINER):
            parts.append(token[len(JOINER) :])
        else:
            if parts:
                parts.append(" ")
            parts.append(token)
    return "".join(parts)


def placeholders(text: str) -> list[str]:
    """The printf placeholders of ``text``, bare: no quotes nor argument positions.

    Two texts carry the same placeholders when these lists are equal as multisets; translators may
    reorder arguments (``%2$s ... %1$s``) and quote them differently.
    """
    found = []
    for match in PLACEHOLDER.finditer(text):
        bare = match.group().strip("'")
        if bare != "%%":
            found.append(re.sub(r"^%\d+\$", "%", bare))
    return found
