"""Parallel text files: sentence pairs from tab-separated files and gettext catalogs.

Readers return a list of ``(source, target)`` string pairs:

* ``read_tsv``: one ``source<TAB>target`` pair per line (a third column, such as the attribution
  of the Tatoeba-derived files, is ignored); a malformed line is reported with its line number.
  The file is read by :func:`rnnkit.data.read_text_file` in the ``encoding`` given (a byte-order
  mark decides over utf-8); catalogs declare their own character set.
* ``read_mo``: a compiled gettext catalog, parsed from its binary layout (both byte orders).
* ``read_po``: a gettext source catalog (multi-line strings, C escapes, ``msgctxt``, plurals).

Catalog readers skip the header (the entry with an empty ``msgid``), untranslated entries (empty
``msgstr``) and ``#, fuzzy`` entries, and take the singular of plural entries (``msgid`` and
``msgstr[0]``).
"""

from __future__ import annotations

import functools
import itertools
import re
import struct
from pathlib import Path

from rnnkit.data.datasets import read_text_file
from rnnkit.errors import DataError
from rnnkit.files import read_input_bytes

Pair = tuple[str, str]


def read_parallel(path: str | Path, *, encoding: str = "utf-8") -> list[Pair]:
    """Read sentence pairs from a ``.tsv``/``.txt`` (in ``encoding``), ``.mo`` or ``.po`` file
    (chosen by suffix; a catalog's header names its character set).

    Raises:
        DataError: the file cannot be read, is malformed, or holds no pairs.
    """
    path = Path(path)
    text = functools.partial(read_tsv, encoding=encoding)  # catalogs name their own charset
    readers = {".mo": read_mo, ".po": read_po, ".tsv": text, ".txt": text}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise DataError(
            f"cannot tell the format of corpus '{path}'; name it .tsv (source<TAB>target), "
            ".mo or .po"
        )
    pairs = reader(path)
    if not pairs:
        raise DataError(f"corpus '{path}' holds no translated sentence pairs")
    return pairs


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise DataError(f"corpus '{path}' does not exist; pass an existing file")
    return read_input_bytes(path, what="corpus")


# The character set a .po header declares ("Content-Type: text/plain; charset=ISO-8859-1").
_PO_CHARSET = re.compile(rb"Content-Type:[^\n]*?charset=([A-Za-z0-9_.:-]+)", re.IGNORECASE)


def _po_charset(data: bytes) -> str:
    """The charset declared in a .po file's header (``utf-8`` when none or the template's
    placeholder ``CHARSET``)."""
    match = _PO_CHARSET.search(data[:16384])
    if match is None or match.group(1).upper() == b"CHARSET":
        return "utf-8"
    return match.group(1).decode("ascii")


def _decode(data: bytes, path: Path, encoding: str = "utf-8") -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not valid {encoding} text") from None
    except LookupError:
        raise DataError(f"{path}: unknown character set '{encoding}'") from None


def read_tsv(path: str | Path, *, encoding: str = "utf-8") -> list[Pair]:
    """Read ``source<TAB>target[<TAB>...]`` lines in ``encoding``; blank lines are skipped.

    Raises:
        DataError: naming the file and line of the first line without two non-empty columns.
    """
    path = Path(path)
    pairs = []
    if not path.exists():
        raise DataError(f"corpus '{path}' does not exist; pass an existing file")
    text = read_text_file(path, encoding=encoding)
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip(" "):  # blank; a line of only tabs is malformed, not blank
            continue
        columns = line.split("\t")
        if len(columns) < 2 or not columns[0].strip() or not columns[1].strip():
            raise DataError(
                f"{path}:{number}: expected 'source<TAB>target', got {line[:60]!r}; "
                "fix or remove the line"
            )
        pairs.append((columns[0].strip(), columns[1].strip()))
    return pairs


_MO_MAGIC = 0x950412DE


def read_mo(path: str | Path) -> list[Pair]:
    """Read a compiled gettext catalog (GNU ``.mo``), in either byte order.

    Layout: a header of 32-bit words (magic, revision, number of strings N, offset of the original
    strings' table, offset of the translations' table, hash table size and offset); each table holds
    N (length, offset) pairs pointing at NUL-terminated strings. An original is
    ``[msgctxt EOT] msgid [NUL msgid_plural]``; a translation is its plural forms joined by NUL.
    Revision 1 adds system-dependent strings (see ``_mo_sysdep_strings``).
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 28:
        raise DataError(f"'{path}' is too short to be a .mo catalog")
    for order in "<>":
        if struct.unpack(order + "I", data[:4])[0] == _MO_MAGIC:
            break
    else:
        raise DataError(f"'{path}' is not a .mo catalog (bad magic number {data[:4].hex()})")
    revision, count, originals_at, translations_at = struct.unpack(order + "4I", data[4:20])
    if revision >> 16 > 1:
        raise DataError(f"'{path}' has unsupported .mo revision {revision >> 16}")

    def string(table: int, index: int) -> bytes:
        length, offset = struct.unpack_from(order + "2I", data, table + 8 * index)
        if offset + length > len(data):
            raise DataError(f"'{path}' is truncated: string {index} points past the end")
        return data[offset : offset + length]

    raw = []
    try:
        for index in range(count):
            raw.append((string(originals_at, index), string(translations_at, index)))
        if revision & 0xFFFF >= 1 and len(data) >= 48:
            raw += _mo_sysdep_strings(data, order)
    except (struct.error, IndexError):
        raise DataError(f"'{path}' is truncated: its string tables point past the end") from None
    charset = "utf-8"
    pairs = []
    for original, translation in raw:
        if not original:  # the header: "Content-Type: text/plain; charset=UTF-8" etc.
            found = re.search(rb"charset=([A-Za-z0-9_.:-]+)", translation)
            charset = found.group(1).decode("ascii") if found else charset
            continue
        msgid = original.split(b"\x04")[-1].split(b"\x00")[0]
        msgstr = translation.split(b"\x00")[0]
        if msgstr:
            pairs.append((_decode(msgid, path, charset), _decode(msgstr, path, charset)))
    return pairs


def _mo_sysdep_strings(data: bytes, order: str) -> list[tuple[bytes, bytes]]:
    """The system-dependent strings of a revision-1 ``.mo`` (those using ``%<PRIuMAX>`` etc.).

    Header words 7-11: number and offset of the segment names (``PRIuMAX``, ...), number of such
    strings, offsets of their originals' and translations' tables. Each table entry points at a
    static string's offset followed by (size, segment) pairs: ``size`` bytes of the static string,
    then the named segment, until the segment 0xFFFFFFFF. The names are written ``<PRIuMAX>`` as
    in the ``.po`` source.
    """
    n_segments, segments_at, count, originals_at, translations_at = struct.unpack_from(
        order + "5I", data, 28
    )
    segments = []
    for index in range(n_segments):
        length, offset = struct.unpack_from(order + "2I", data, segments_at + 8 * index)
        segments.append(b"<" + data[offset : offset + length].rstrip(b"\0") + b">")

    def build(table: int, index: int) -> bytes:
        (entry,) = struct.unpack_from(order + "I", data, table + 4 * index)
        (offset,) = struct.unpack_from(order + "I", data, entry)
        pieces = []
        for position in itertools.count(entry + 4, 8):
            size, segment = struct.unpack_from(order + "2I", data, position)
            pieces.append(data[offset : offset + size])
            offset += size
            if segment == 0xFFFFFFFF:
                break
            pieces.append(segments[segment])
        text = b"".join(pieces)
        return text[:-1] if text.endswith(b"\0") else text

    return [(build(originals_at, i), build(translations_at, i)) for i in range(count)]


_PO_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
_PO_ESCAPE = re.compile(r"\\(?:([0-7]{1,3})|x([0-9a-fA-F]{1,2})|(.))")
_PO_KEYWORD = re.compile(r"^(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s+(\".*)$")


def _po_string(literal: str, path: Path, number: int) -> str:
    """Decode one quoted PO string literal ``"..."`` with C escapes.

    Octal and hex escapes stand for bytes (``\\303\\251`` is UTF-8 for ``é``), so the literal is
    rebuilt as bytes and decoded once.
    """
    literal = literal.strip()
    if len(literal) < 2 or literal[0] != '"' or literal[-1] != '"':
        raise DataError(f"{path}:{number}: expected a quoted string, got {literal[:60]!r}")
    body = literal[1:-1]
    out = bytearray()
    position = 0
    for match in _PO_ESCAPE.finditer(body):
        out += body[position : match.start()].encode()
        octal, hexa, char = match.groups()
        if octal or hexa:
            out.append(int(octal, 8) & 0xFF if octal else int(hexa, 16))
        else:
            out += _PO_ESCAPES.get(char, char).encode()
        position = match.end()
    out += body[position:].encode()
    try:
        return bytes(out).decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}:{number}: not valid utf-8 text") from None


def read_po(path: str | Path) -> list[Pair]:
    """Read a gettext source catalog (``.po``).

    Entries are separated by blank lines; ``#`` lines are comments (``#, fuzzy`` marks an entry to
    skip; ``#~`` obsolete entries are skipped). A keyword's string may continue on following lines
    that hold only a quoted string.
    """
    path = Path(path)
    data = _read_bytes(path)
    text = _decode(data, path, _po_charset(data))
    pairs: list[Pair] = []
    entry: dict[str, str] = {}
    fuzzy = False
    current = None  # the field that continuation lines extend

    def finish() -> None:
        nonlocal entry, fuzzy, current
        msgid, msgstr = entry.get("msgid", ""), entry.get("msgstr", entry.get("msgstr[0]", ""))
        if msgid and msgstr and not fuzzy:
            pairs.append((msgid, msgstr))
        entry, fuzzy, current = {}, False, None

    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            finish()
        elif line.startswith("#"):
            if any(k.startswith("msgstr") for k in entry):
                finish()  # a comment after a complete entry starts the next one
            if line.startswith("#,") and "fuzzy" in line[2:].replace(",", " ").split():
                fuzzy = True
            current = None
        elif line.startswith('"'):
            if current is None:
                raise DataError(f"{path}:{number}: a string continuation outside an entry")
            entry[current] += _po_string(line, path, number)
        else:
            match = _PO_KEYWORD.match(line)
            if match is None:
                raise DataError(f"{path}:{number}: cannot parse {line[:60]!r}")
            keyword, _, literal = match.groups()
            if keyword in ("msgctxt", "msgid") and any(k.startswith("msgstr") for k in entry):
                finish()  # an entry that was not followed by a blank line
            current = keyword
            entry[keyword] = _po_string(literal, path, number)
    finish()
    return pairs
