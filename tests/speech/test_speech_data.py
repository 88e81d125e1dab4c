"""Transcript formats, the alphabet, batching, the model on packed batches, the task's order."""

import pytest
import torch

from rnnkit.errors import DataError
from rnnkit.speech.data import (
    Alphabet,
    Example,
    collate,
    length_batches,
    read_librispeech,
    read_tsv,
    user_corpus,
)
from rnnkit.speech.model import AcousticConfig, AcousticModel
from rnnkit.speech.task import SpeechTask


def test_tsv_and_librispeech_layouts(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"x")
    tsv = tmp_path / "t.tsv"
    tsv.write_text("a.wav\tHello   World\n\n")
    assert [(i.path, i.text) for i in read_tsv(tsv)] == [(str(tmp_path / "a.wav"), "hello world")]
    tsv.write_text("a.wav\tone\nb.wav\ttwo\n")
    with pytest.raises(DataError, match=r"t.tsv:2: no such audio file 'b.wav'"):
        read_tsv(tsv)  # named by file:line before any audio is read
    book = tmp_path / "libri" / "19" / "198"
    book.mkdir(parents=True)
    (book / "19-198.trans.txt").write_text(
        "19-198-0000 NORTHANGER ABBEY\n19-198-0001 CHAPTER ONE\n"
    )
    (book / "19-198-0000.flac").write_bytes(b"x")
    with pytest.raises(DataError, match="19-198.trans.txt:2: no audio 19-198-0001.flac"):
        read_librispeech(tmp_path / "libri")  # a line whose audio is missing: named, file:line
    (book / "19-198-0001.wav").write_bytes(b"x")
    items = read_librispeech(tmp_path / "libri")
    assert [i.text for i in items] == ["northanger abbey", "chapter one"]
    assert [i.path for i in items] == [
        str(book / "19-198-0000.flac"),
        str(book / "19-198-0001.wav"),
    ]
    splits = user_corpus(str(tmp_path / "libri"))
    assert set(splits) == {"train", "valid", "test"} and all(splits.values())
    with pytest.raises(DataError, match="no such corpus"):
        user_corpus(str(tmp_path / "nothing.tsv"))
    with pytest.raises(DataError, match="no \\*.trans.txt"):
        (tmp_path / "empty").mkdir()
        read_librispeech(tmp_path / "empty")


def test_alphabet_round_trip_and_names_unknown_characters():
    alphabet = Alphabet.from_texts(["one two", "oh"])
    assert len(alphabet) == 1 + len(set("one twoh"))
    ids = alphabet.encode("two one")
    assert 0 not in ids and alphabet.decode(ids) == "two one"
    with pytest.raises(DataError, match="'!x'"):
        alphabet.encode("one x!")


def examples(lengths, n_mels=4):
    g = torch.Generator().manual_seed(0)
    return [
        Example(torch.randn(n, n_mels, generator=g), torch.tensor([1, 2][: 1 + n % 2]), "ab")
        for n in lengths
    ]


def test_length_batches_bound_the_padded_frames():
    data = examples([5, 30, 7, 12, 29, 6, 31, 8])
    batches = length_batches(data, max_frames=60)
    assert sorted(i for b in batches for i in b) == list(range(8))
    for b in batches:
        assert max(data[i].feats.shape[0] for i in b) * len(b) <= 60 or len(b) == 1
    batch = collate([data[i] for i in batches[0]])
    assert batch.lengths.tolist() == sorted(batch.lengths.tolist(), reverse=True)


@pytest.mark.parametrize("frontend", ["stack", "conv"])
def test_model_output_of_an_utterance_does_not_depend_on_its_batch(frontend):
    torch.manual_seed(0)
    config = AcousticConfig(n_mels=4, num_classes=3, stack=3, hidden_size=8, frontend=frontend,
                            channels=4)  # fmt: skip
    model = AcousticModel(config).eval()
    data = examples([10, 7, 4])
    batch = collate(data)
    with torch.no_grad():
        log_probs, lengths = model(batch.feats, batch.lengths)
        alone, alone_len = model(data[1].feats.unsqueeze(0), torch.tensor([7]))
    assert lengths.tolist() == [4, 3, 2] and log_probs.shape == (4, 3, 3)
    torch.testing.assert_close(log_probs[:3, 1], alone[:, 0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(log_probs.exp().sum(-1)[:2], torch.ones(2, 3), atol=1e-5, rtol=0)


def test_task_batches_resume_in_the_same_order_with_the_same_masks():
    from rnnkit.speech.features import SpecAugment

    data = examples([10, 12, 14, 30, 32, 34, 50, 52])
    task = SpeechTask({"train": data, "valid": data}, batch_frames=70, seed=1,
                      augment=SpecAugment(time_width=3, freq_width=1))  # fmt: skip
    full = list(task.train_batches(2, 0))
    tail = list(task.train_batches(2, 2))
    assert len(full) == task.steps_per_epoch() and len(tail) == len(full) - 2
    for a, b in zip(full[2:], tail):
        torch.testing.assert_close(a.feats, b.feats)
    other = [b.lengths.tolist() for b in task.train_batches(3, 0)]
    assert sorted(map(tuple, other)) == sorted(tuple(b.lengths.tolist()) for b in full)


def test_transcripts_with_a_byte_order_mark_or_in_latin_1(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"x")
    tsv = tmp_path / "t.tsv"
    tsv.write_bytes("a.wav\tH\u00e9llo\r\n".encode("utf-8-sig"))  # the mark was in the path
    assert [i.path for i in read_tsv(tsv)] == [str(tmp_path / "a.wav")]
    tsv.write_bytes("a.wav\tH\u00e9llo\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"t.tsv is not valid utf-8 text \(line 1, .*latin-1"):
        read_tsv(tsv)
    assert [i.text for i in read_tsv(tsv, encoding="latin-1")] == ["h\u00e9llo"]
    book = tmp_path / "libri"
    book.mkdir()
    (book / "1-2.trans.txt").write_bytes("1-2-0000 ONE TWO\n".encode("utf-8-sig"))
    (book / "1-2-0000.flac").write_bytes(b"x")
    assert [i.text for i in read_librispeech(book)] == ["one two"]
    (book / "1-2.trans.txt").write_bytes("1-2-0000 ONE \u2019TWO\u2019\n".encode("cp1252"))
    with pytest.raises(DataError, match=r"1-2.trans.txt is not valid utf-8 text"):
        read_librispeech(book)
    # typographic quotes are read as the ASCII apostrophe the synthesized corpora write
    assert [i.text for i in read_librispeech(book, encoding="cp1252")] == ["one 'two'"]


def test_transcripts_have_one_spelling_per_word():
    from rnnkit.speech.data import normalize_text

    decomposed = "Caf\u0065\u0301  DON\u2019T\tstop"
    assert normalize_text(decomposed) == "caf\u00e9 don't stop"
    assert normalize_text("caf\u00e9 don't stop") == "caf\u00e9 don't stop"


def test_a_lexicon_and_the_text_to_speak_are_read_in_the_encoding_given(tmp_path):
    from rnnkit.speech.data import read_lexicon, sentence_lines

    path = tmp_path / "words.txt"
    path.write_bytes("caf\u00e9\nna\u00efve\n".encode("latin-1"))
    with pytest.raises(DataError, match="--encoding latin-1"):
        read_lexicon(path)
    assert read_lexicon(path, encoding="latin-1") == ["caf\u00e9", "na\u00efve"]
    path.write_bytes(" \n".encode("utf-16"))
    with pytest.raises(DataError, match="holds no words"):
        read_lexicon(path)
    lines = [f"line {i} of the play, the caf\u00e9 scene, don\u2019t" for i in range(12)]
    path.write_bytes("\n".join(lines).encode("utf-16-le"))
    with pytest.raises(DataError, match="give --encoding utf-16-le"):
        sentence_lines(str(path))
    text, _ = sentence_lines(str(path), "utf-16-le")
    assert text[0] == "line of the play the caf scene don't"


def test_a_short_or_damaged_recording_is_named_in_the_error(tmp_path):
    import numpy as np
    import soundfile

    from rnnkit.speech.audio import read_audio, read_blocks
    from rnnkit.speech.data import Item, featurize
    from rnnkit.speech.features import FeatureConfig

    config = FeatureConfig()
    soundfile.write(tmp_path / "ok.wav", np.zeros(8000), 16000)
    soundfile.write(tmp_path / "click.wav", np.zeros(100), 16000)  # 6 ms: no whole frame
    items = [Item(str(tmp_path / "ok.wav"), "one"), Item(str(tmp_path / "click.wav"), "two")]
    alphabet = Alphabet.from_texts(["one", "two"])
    # It used to be "the audio is 6.2 ms long, ..." without saying which of the files.
    with pytest.raises(DataError, match=r"click\.wav: the audio is 6\.2 ms long"):
        featurize(items, alphabet, config)
    bad = np.zeros(16000, np.float32)
    bad[5] = np.nan
    soundfile.write(tmp_path / "nan.wav", bad, 16000, subtype="FLOAT")
    # NaN samples used to become an empty transcript, exit status 0.
    with pytest.raises(DataError, match=r"nan\.wav holds NaN or infinite samples"):
        read_audio(tmp_path / "nan.wav", sample_rate=16000)
    with pytest.raises(DataError, match=r"nan\.wav holds NaN or infinite samples"):
        list(read_blocks(tmp_path / "nan.wav", sample_rate=16000, seconds=30.0))
