import shutil
import struct
import subprocess

import pytest

from rnnkit.errors import DataError, DownloadError
from rnnkit.translate.catalog import default_catalog
from rnnkit.translate.data import split_of, split_pairs
from rnnkit.translate.formats import read_mo, read_parallel, read_po, read_tsv
from rnnkit.translate.tokens import JOINER, detokenize, placeholders, tokenize


def write_mo(path, entries, byteorder="<"):
    """A minimal GNU .mo writer: entries are (original bytes, translation bytes), sorted."""
    entries = sorted(entries)
    count = len(entries)
    originals_at = 28
    translations_at = originals_at + 8 * count
    data_at = translations_at + 8 * count
    blob = b""
    original_table, translation_table = [], []
    for table, index in ((original_table, 0), (translation_table, 1)):
        for entry in entries:
            string = entry[index]
            table.append((len(string), data_at + len(blob)))
            blob += string + b"\0"
    header = struct.pack(
        byteorder + "7I", 0x950412DE, 0, count, originals_at, translations_at, 0, data_at
    )
    tables = b"".join(struct.pack(byteorder + "2I", *e) for e in original_table + translation_table)
    path.write_bytes(header + tables + blob)


MO_ENTRIES = [
    (b"", b"Content-Type: text/plain; charset=UTF-8\n"),
    (b"Hello", b"Bonjour"),
    (b"%d file\0%d files", b"%d fichier\0%d fichiers"),
    (b"menu\x04Open", b"Ouvrir"),
    (b"untranslated", b""),
    ("caf\u00e9 '%s'".encode(), "caf\u00e9 \u00ab %s \u00bb".encode()),
]
MO_EXPECTED = [
    ("%d file", "%d fichier"),
    ("Hello", "Bonjour"),
    ("caf\u00e9 '%s'", "caf\u00e9 \u00ab %s \u00bb"),
    ("Open", "Ouvrir"),
]


@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_mo_both_byte_orders(tmp_path, byteorder):
    path = tmp_path / "x.mo"
    write_mo(path, MO_ENTRIES, byteorder)
    assert sorted(read_mo(path)) == sorted(MO_EXPECTED)


def test_mo_latin1_charset_from_header(tmp_path):
    path = tmp_path / "x.mo"
    header = b"Content-Type: text/plain; charset=ISO-8859-1\n"
    write_mo(path, [(b"", header), (b"coffee", "caf\u00e9".encode("latin-1"))])
    assert read_mo(path) == [("coffee", "caf\u00e9")]


def test_mo_bad_magic_and_truncation(tmp_path):
    path = tmp_path / "x.mo"
    path.write_bytes(b"\0" * 40)
    with pytest.raises(DataError, match="bad magic"):
        read_mo(path)
    write_mo(path, MO_ENTRIES)
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(DataError, match="truncated"):
        read_mo(path)


PO_TEXT = r"""# A comment
msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\n"

#: src/a.c:1
msgid "Hello"
msgstr "Bonjour"

#, fuzzy
msgid "Fuzzy one"
msgstr "Flou"

#, c-format, fuzzy
msgid "Also fuzzy %s"
msgstr "Aussi flou %s"

msgid "Empty"
msgstr ""

#, c-format
msgid "%d file"
msgid_plural "%d files"
msgstr[0] "%d fichier"
msgstr[1] "%d fichiers"

msgctxt "menu"
msgid "Open"
msgstr "Ouvrir"

#, c-format
msgid "offset %<PRIuMAX> in '%s'"
msgstr "d\303\251calage %<PRIuMAX> dans '%s'"

msgid ""
"Line one\n"
"say \"hi\"\t\\ok"
msgstr "Ligne un\ndis \"salut\"\t\\ok"

#~ msgid "Obsolete"
#~ msgstr "Obsolète"
msgid "No blank line before"
msgstr "Pas de ligne vide"
msgid "Next"
msgstr "Suivant"
"""


def test_po_entries(tmp_path):
    path = tmp_path / "x.po"
    path.write_text(PO_TEXT, encoding="utf-8")
    assert read_po(path) == [
        ("Hello", "Bonjour"),
        ("%d file", "%d fichier"),
        ("Open", "Ouvrir"),
        ("offset %<PRIuMAX> in '%s'", "d\u00e9calage %<PRIuMAX> dans '%s'"),
        ('Line one\nsay "hi"\t\\ok', 'Ligne un\ndis "salut"\t\\ok'),
        ("No blank line before", "Pas de ligne vide"),
        ("Next", "Suivant"),
    ]


def test_po_and_msgfmt_mo_agree(tmp_path):
    if shutil.which("msgfmt") is None:  # our own writer covers .mo; this cross-checks with GNU's
        pytest.skip("msgfmt is not installed")
    po = tmp_path / "x.po"
    po.write_text(PO_TEXT, encoding="utf-8")
    mo = tmp_path / "x.mo"
    subprocess.run(["msgfmt", "-o", str(mo), str(po)], check=True)
    assert sorted(read_mo(mo)) == sorted(read_po(po))


def test_po_syntax_error_names_line(tmp_path):
    path = tmp_path / "x.po"
    path.write_text('msgid "a"\nmsgstr "b"\n\nmsgid oops\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"x\.po:4: "):
        read_po(path)


def test_tsv_reader_and_malformed_line_number(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("Go.\tVa !\tCC-BY 2.0\n\nHi.\tSalut.\n", encoding="utf-8")
    assert read_tsv(path) == [("Go.", "Va !"), ("Hi.", "Salut.")]
    path.write_text("Go.\tVa !\nno tab here\nHi.\tSalut.\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"pairs\.tsv:2: expected 'source<TAB>target'"):
        read_tsv(path)
    path.write_text("Go.\tVa !\n\t\n", encoding="utf-8")
    with pytest.raises(DataError, match=r":2: "):
        read_tsv(path)


def test_unreadable_or_empty_corpus(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_parallel(tmp_path / "missing.tsv")
    empty = tmp_path / "empty.tsv"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match=r"empty\.tsv is empty; give a text file with some text"):
        read_parallel(empty)
    empty.write_text("\t\n", encoding="utf-16")
    with pytest.raises(DataError, match=r"empty\.tsv:1: expected 'source<TAB>target'"):
        read_parallel(empty)
    binary = tmp_path / "binary.tsv"
    binary.write_bytes(b"ok\tok\n\xff\xfe\tx\n")
    with pytest.raises(DataError, match=r"binary\.tsv is not valid utf-8 text \(line 2,"):
        read_parallel(binary)
    with pytest.raises(DataError, match="cannot tell the format"):
        read_parallel(tmp_path / "corpus.csv")


def test_tokenize_keeps_placeholders_and_round_trips():
    text = "Cannot read '%s': %.*s at %1$s (%d%%), %<PRIuMAX> objects."
    tokens = tokenize(text)
    for placeholder in ("'%s'", "%.*s", "%1$s", "%d", "%%", "%<PRIuMAX>"):
        assert any(t.lstrip(JOINER) == placeholder for t in tokens), placeholder
    assert tokens[:3] == ["Cannot", "read", "'%s'"]
    assert detokenize(tokens) == text
    assert placeholders(text) == ["%s", "%.*s", "%s", "%d", "%<PRIuMAX>"]


def test_tokenize_chinese_by_character():
    tokens = tokenize("无法读取 %s 文件")
    assert [t.lstrip(JOINER) for t in tokens] == ["无", "法", "读", "取", "%s", "文", "件"]
    assert detokenize(tokens) == "无法读取 %s 文件"


def test_split_is_stable_and_roughly_90_5_5():
    assert split_of("Hello") == split_of("Hello")
    pairs = [(f"message number {i}", "x") for i in range(4000)]
    splits = split_pairs(pairs)
    assert 0.88 < len(splits["train"]) / 4000 < 0.92
    assert 0.035 < len(splits["test"]) / 4000 < 0.065
    # sha1, not Python's salted hash(): fixed values, the same in every process and version
    assert [i for i in range(40) if split_of(f"message number {i}") != "train"] == [10, 32]


def test_default_catalog_finds_lists_and_rejects(tmp_path):
    with pytest.raises(ValueError, match="not a locale name"):
        default_catalog("../etc")
    system, cache = tmp_path / "locale", tmp_path / "cache"
    for root, lang in ((system, "de"), (cache / "usr/share/locale", "zh_CN")):
        (root / lang / "LC_MESSAGES").mkdir(parents=True)
        (root / lang / "LC_MESSAGES" / "git.mo").write_bytes(b"")
    assert default_catalog("de", locale_dir=system, cache_dir=cache) == (
        system / "de/LC_MESSAGES/git.mo"
    )
    assert default_catalog("zh_CN", locale_dir=system, cache_dir=cache).parent.parent.name == (
        "zh_CN"
    )
    with pytest.raises(
        DownloadError, match="no message catalog for lang='xx'; available: de, zh_CN"
    ):
        default_catalog("xx", locale_dir=system, cache_dir=cache)


def test_po_honours_its_declared_charset(tmp_path):
    path = tmp_path / "de.po"
    text = (
        'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=ISO-8859-1\\n"\n\n'
        'msgid "open file"\nmsgstr "Datei öffnen"\n'
    )
    path.write_bytes(text.encode("latin-1"))
    assert read_po(path) == [("open file", "Datei öffnen")]
