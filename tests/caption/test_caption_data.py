"""User corpora: TSV and Karpathy split JSON, with one-line errors naming file and line."""

import json

import numpy as np
import pytest
from PIL import Image

from rnnkit.caption.data import build_vocab, load_corpus, tokenize
from rnnkit.errors import DataError


def _pictures(folder, count):
    folder.mkdir(exist_ok=True)
    names = []
    for i in range(count):
        name = f"img{i}.png"
        Image.new("RGB", (20 + i, 30), (10 * i, 0, 0)).save(folder / name)
        names.append(name)
    return names


def test_tsv_groups_captions_per_image_and_splits_the_images(tmp_path):
    names = _pictures(tmp_path / "pics", 6)
    lines = ["# image<TAB>caption", ""]
    for i, name in enumerate(names):
        lines += [f"pics/{name}\tA dog, number {i}!", f"pics/{name}\tthe dog runs"]
    (tmp_path / "caps.tsv").write_text("\n".join(lines) + "\n")
    splits = load_corpus(str(tmp_path / "caps.tsv"), image_size=32)
    sizes = {name: len(split) for name, split in splits.items()}
    assert sizes == {"train": 4, "valid": 1, "test": 1}
    every = [n for split in splits.values() for n in split.names]
    assert sorted(every) == sorted(str((tmp_path / "pics" / n).resolve()) for n in names)
    train = splits["train"]
    assert train.images.shape == (4, 32, 32, 3)
    for name, refs in zip(train.names, train.captions):
        i = int(name.split("img")[-1].split(".")[0])
        assert refs == [["a", "dog", "number", str(i)], ["the", "dog", "runs"]]
        assert train.images[train.names.index(name)][0, 0, 0] == 10 * i  # its own picture
    assert "dog" in build_vocab(train)


@pytest.mark.parametrize(
    "line, message",
    [
        ("pics/nothere.png\ta cat", "caps.tsv:2: image pics/nothere.png not found"),
        ("pics/img0.png\t ,.!", "caps.tsv:2: the caption is empty"),
        ("pics/img0.png a cat", "caps.tsv:2: expected image_path<TAB>caption"),
    ],
)
def test_tsv_errors_name_file_and_line(tmp_path, line, message):
    _pictures(tmp_path / "pics", 3)
    (tmp_path / "caps.tsv").write_text(f"pics/img1.png\ta cat\n{line}\n")
    with pytest.raises(DataError, match=message):
        load_corpus(str(tmp_path / "caps.tsv"))


def test_a_bad_picture_in_a_tsv_names_the_line(tmp_path):
    names = _pictures(tmp_path, 3)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    rows = [f"{n}\ta cat" for n in names] + ["bad.png\ta broken cat"]
    (tmp_path / "caps.tsv").write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"caps\.tsv:4: .*bad\.png is not an image"):
        load_corpus(str(tmp_path / "caps.tsv"))


def _karpathy(tmp_path, names):
    splits = ["train", "restval", "val", "test"]
    images = [
        {"filename": n, "split": s, "sentences": [{"raw": f"A picture {i}."}, {"raw": "x y"}]}
        for i, (n, s) in enumerate(zip(names, splits))
    ]
    return {"images": images, "dataset": "flickr8k"}


def test_karpathy_json_reads_splits_and_sentences(tmp_path):
    names = _pictures(tmp_path / "Images", 4)
    (tmp_path / "dataset.json").write_text(json.dumps(_karpathy(tmp_path, names)))
    splits = load_corpus(
        str(tmp_path / "dataset.json"), image_size=32, images_dir=str(tmp_path / "Images")
    )
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [2, 1, 1]  # restval trains
    assert splits["test"].captions == [[["a", "picture", "3"], ["x", "y"]]]
    assert np.asarray(splits["valid"].images).shape == (1, 32, 32, 3)


def test_a_json_in_another_layout_says_which_layout_it_expects(tmp_path):
    coco_annotations = {"annotations": [{"image_id": 1, "caption": "a cat"}], "images": None}
    (tmp_path / "captions_train2014.json").write_text(json.dumps(coco_annotations))
    with pytest.raises(DataError, match="Karpathy split layout"):
        load_corpus(str(tmp_path / "captions_train2014.json"))
    names = _pictures(tmp_path, 4)
    data = _karpathy(tmp_path, names)
    data["images"][2]["sentences"] = [{"tokens": ["a"]}]
    (tmp_path / "d.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"images\[2\]\.sentences\[0\] has no 'raw'"):
        load_corpus(str(tmp_path / "d.json"))


def test_tokenize_lowercases_and_drops_punctuation():
    assert tokenize("A man's DOG, running!") == ["a", "man's", "dog", "running"]


def test_tokenize_keeps_accented_words_whole():
    # [a-z0-9]+ used to cut "café" into "caf" and drop "é", and "l’église" into "l" + "glise".
    assert tokenize("Un CAFÉ près de l\u2019église") == ["un", "café", "près", "de", "l'église"]
    assert tokenize("e\u0301te\u0301") == tokenize("\u00e9t\u00e9") == ["\u00e9t\u00e9"]


def test_a_tsv_and_a_json_with_a_byte_order_mark(tmp_path):
    names = _pictures(tmp_path / "pics", 3)
    lines = [f"pics/{name}\ta red dog" for name in names]
    (tmp_path / "caps.tsv").write_bytes("\r\n".join(lines).encode("utf-8-sig"))
    splits = load_corpus(str(tmp_path / "caps.tsv"), image_size=32)  # the mark was in the path
    assert sum(len(s) for s in splits.values()) == 3
    images = [{"filename": n, "split": s, "sentences": [{"raw": "a red dog"}]}
              for n, s in zip(names, ["train", "val", "test"])]  # fmt: skip
    (tmp_path / "k.json").write_bytes(json.dumps({"images": images}).encode("utf-8-sig"))
    splits = load_corpus(str(tmp_path / "k.json"), image_size=32, images_dir=str(tmp_path / "pics"))
    assert sum(len(s) for s in splits.values()) == 3


def test_a_folder_given_as_the_caption_file_is_called_a_folder(tmp_path):
    # It used to be "no such caption file: pics", of a folder that is there.
    _pictures(tmp_path / "pics", 3)
    with pytest.raises(DataError, match=r"pics is a directory; give the caption file in it"):
        load_corpus(str(tmp_path / "pics"))
    (tmp_path / "d.json").write_text(json.dumps(_karpathy(tmp_path, ["img0.png"])))
    with pytest.raises(DataError, match=r"^--images-dir .*nope is not a folder"):
        load_corpus(str(tmp_path / "d.json"), images_dir=str(tmp_path / "nope"))


def test_a_karpathy_json_is_read_in_the_encoding_given(tmp_path):
    # caption files had to be UTF-8 ("save it as UTF-8 text"); now --encoding names theirs.
    names = _pictures(tmp_path / "Images", 4)
    (tmp_path / "Images" / names[3]).rename(tmp_path / "Images" / "Z\u00fcrich.png")
    data = _karpathy(tmp_path, [*names[:3], "Z\u00fcrich.png"])
    path = tmp_path / "dataset.json"
    path.write_bytes(json.dumps(data, ensure_ascii=False).encode("latin-1"))
    images = str(tmp_path / "Images")
    with pytest.raises(DataError, match=r"dataset\.json is not valid utf-8 text .*latin-1"):
        load_corpus(str(path), image_size=32, images_dir=images)
    splits = load_corpus(str(path), image_size=32, images_dir=images, encoding="latin-1")
    assert splits["test"].names == [str(tmp_path / "Images" / "Z\u00fcrich.png")]
    assert splits["test"].captions == [[["a", "picture", "3"], ["x", "y"]]]
