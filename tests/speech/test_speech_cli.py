"""The speech commands end to end on tiny tone data, and every bad input as one line, exit 2."""

import json

import numpy as np
import pytest
import soundfile
import torch
from speech_tones import RATE, TINY, tone_word


def test_training_learns_to_read_tones(trained, tone_tsv, run_cli):
    code, out, err = run_cli("speech", "eval", trained, "--data", tone_tsv, "--beam", "4",
                          "--json")  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result["utterances"] == 60
    assert result["greedy"]["cer"] < 0.2
    assert result["beam"]["cer"] <= result["greedy"]["cer"] + 0.02
    for name in ("run.json", "config.json", "model.safetensors", "last.safetensors", "loss.png"):
        assert (trained / name).is_file()


def test_transcribe_json_timestamps_and_plot(trained, tmp_path, run_cli):
    import random

    wave = tone_word("cab", random.Random(5))
    soundfile.write(tmp_path / "cab.flac", wave, RATE)
    soundfile.write(tmp_path / "cab44.wav", np.stack([wave, wave], 1), RATE)
    code, out, err = run_cli("speech", "transcribe", trained, tmp_path / "cab.flac",
                          tmp_path / "cab44.wav", "--timestamps", "--json", "--plot",
                          tmp_path / "p.png")  # fmt: skip
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [r["text"] for r in lines] == ["cab", "cab"]
    words = lines[0]["words"]
    assert len(words) == 1 and words[0]["word"] == "cab"
    assert 0.0 <= words[0]["start"] < 0.2 and 0.4 < words[0]["end"] <= lines[0]["seconds"] + 0.03
    assert (tmp_path / "p.png").stat().st_size > 10_000
    # The plot never replaces an input, or a file rnnkit did not draw (unless --force).
    flac = (tmp_path / "cab.flac").read_bytes()
    code, _, err = run_cli("speech", "transcribe", trained, tmp_path / "cab.flac",
                           "--plot", tmp_path / "cab.flac", "--force")  # fmt: skip
    assert code == 2 and "--plot" in err and "also an input" in err
    assert (tmp_path / "cab.flac").read_bytes() == flac
    (tmp_path / "notes.png").write_text("mine")
    code, _, err = run_cli("speech", "transcribe", trained, tmp_path / "cab.flac",
                           "--plot", tmp_path / "notes.png")  # fmt: skip
    assert (
        code == 2
        and "not an rnnkit image" in err
        and (tmp_path / "notes.png").read_text() == "mine"
    )


def test_long_audio_is_transcribed_in_blocks(trained, tmp_path):
    import random

    from rnnkit.speech import api
    from rnnkit.speech.longform import SegmentConfig

    rng = random.Random(1)
    wave = np.concatenate([tone_word("ab", rng), tone_word("c", rng), tone_word("ba", rng)])
    soundfile.write(tmp_path / "long.wav", wave, RATE)
    asr = api.load(trained)
    asr.segmenting = SegmentConfig(max_seconds=0.5, min_seconds=0.25, pause_seconds=0.04,
                                   overlap_seconds=0.2)  # fmt: skip
    assert len(list(asr.blocks(tmp_path / "long.wav"))) >= 2
    text = asr.transcribe([tmp_path / "long.wav"])[0].text
    assert text.replace(" ", "") == "abcba"


def bad_files(tmp_path):
    (tmp_path / "notes.wav").write_text("this is not audio at all\n" * 10)
    (tmp_path / "empty.wav").write_bytes(b"")
    soundfile.write(tmp_path / "zero.wav", np.zeros(0), RATE, format="WAV")
    soundfile.write(tmp_path / "short.wav", np.zeros(100), RATE)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\xff\x00\x00\x00WAVEfmt \x10\x00" + b"\x00" * 8)
    (tmp_path / "song.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0")
    (tmp_path / "folder").mkdir()
    return {
        "notes.wav": "cannot read",
        "empty.wav": "empty",
        "zero.wav": "zero-length",
        "short.wav": "shorter than one feature frame",
        "corrupt.wav": "cannot read",
        "song.mid": "cannot read",
        "folder": "is a directory",
        "missing.wav": "no such audio file",
    }


def test_bad_audio_is_one_line_and_exit_2(trained, tmp_path, run_cli):
    for name, message in bad_files(tmp_path).items():
        code, out, err = run_cli("speech", "transcribe", trained, tmp_path / name)
        assert code == 2, name
        assert message in err and err.count("\n") == 1, (name, err)


def test_bad_transcripts_and_run_dirs(trained, tone_tsv, tmp_path, run_cli):
    bad = tmp_path / "bad.tsv"
    bad.write_text(f"{tone_tsv.parent / 'u000.wav'}\tab\nno tab on this line\n")
    code, _, err = run_cli("speech", "eval", trained, "--data", bad)
    assert code == 2 and f"{bad}:2:" in err and err.count("\n") == 1
    odd = tmp_path / "odd.tsv"
    odd.write_text(f"{tone_tsv.parent / 'u000.wav'}\tabé!\n")
    code, _, err = run_cli("speech", "eval", trained, "--data", odd)
    assert code == 2 and "outside the model's alphabet: '!é'" in err
    # a run directory of another task
    other = tmp_path / "lmrun"
    other.mkdir()
    (other / "run.json").write_text(json.dumps({"format": "rnnkit-run", "task": "lm"}))
    code, _, err = run_cli("speech", "transcribe", other, tone_tsv.parent / "u000.wav")
    assert code == 2 and "'lm' run" in err
    # training into an existing run refuses and keeps it intact
    before = (trained / "model.safetensors").read_bytes()
    code, _, err = run_cli("speech", "train", "--corpus", tone_tsv, "--out", trained,
                        "--max-steps", "1", *TINY)  # fmt: skip
    assert code == 2 and "already holds a run" in err
    assert (trained / "model.safetensors").read_bytes() == before


def test_missing_synthesizer_names_the_package(monkeypatch, tmp_path, run_cli):
    import shutil

    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda p: None if p == "espeak-ng" else real(p))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    code, _, err = run_cli("speech", "synth", "--train-utterances", "2", "--quiet")
    assert code == 2 and "Debian package espeak-ng" in err


def test_missing_festival_names_its_packages_and_the_way_around(monkeypatch, tmp_path, run_cli):
    import shutil

    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda p: None if p == "festival" else real(p))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    code, _, err = run_cli("speech", "synth", "--train-utterances", "20", "--quiet")
    assert code == 2 and "festival festvox-kdlpc16k" in err and "--festival-share 0" in err
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as stop:  # refused while parsing
        run_cli("speech", "synth", "--festival-share", "1.5", "--quiet")
    assert stop.value.code == 2
    for bad in ("-0.1", "nan", "2"):
        with pytest.raises(SystemExit) as stop:
            run_cli("speech", "train", "--out", tmp_path / "r", "--festival-extra-share", bad)
        assert stop.value.code == 2


@pytest.mark.parametrize("command", ["synth", "train", "transcribe", "eval"])
def test_help_shows_defaults(command, capsys):
    from rnnkit import cli

    with pytest.raises(SystemExit):
        cli.main(["speech", command, "--help"])
    out = capsys.readouterr().out
    assert "usage" in out
    if command == "train":
        assert "(default: synth-digits)" in out and "(default: 160)" in out
        assert "--decay-steps" in out and "--decay-floor" in out
    if command in ("synth", "train"):  # 30,000: chosen at the budget (docs/speech.md)
        assert "(default: 30000)" in out.split("synthesized training utterances")[1].split("--")[0]


def test_train_options_reach_the_training_schedule():
    """--lr, --decay-steps and --decay-floor end up in the TrainConfig the trainer follows."""
    from rnnkit import cli
    from rnnkit.speech.cli import recipe_from_args
    from rnnkit.speech.recipe import SpeechRecipe

    parser = cli.build_parser()
    plain = recipe_from_args(parser.parse_args(["speech", "train", "--out", "x"]))
    assert plain == SpeechRecipe()
    assert plain.train_config().decay_steps is None
    args = ["speech", "train", "--out", "x", "--lr", "0.003", "--decay-steps", "5000",
            "--decay-floor", "0.2"]  # fmt: skip
    config = recipe_from_args(parser.parse_args(args)).train_config()
    assert (config.lr, config.decay_steps, config.decay_floor) == (0.003, 5000, 0.2)


def test_transcribe_with_a_character_lm_run_and_hotwords(trained, tone_tsv, tmp_path, run_cli):
    import random

    rng = random.Random(0)
    text = "\n".join(
        "".join(rng.choice("abc") for _ in range(rng.randint(1, 3))) for _ in range(800)
    )
    (tmp_path / "lm.txt").write_text(text + "\n")
    code, _, err = run_cli("lm", "train", "--data", tmp_path / "lm.txt", "--out", tmp_path / "lm",
                        "--max-steps", "30", "--hidden", "16", "--embedding", "8", "--layers", "1",
                        "--bptt", "16", "--batch-size", "4", "--quiet")  # fmt: skip
    assert code == 0, err
    audio = tone_tsv.parent / "u001.wav"
    code, out, err = run_cli("speech", "transcribe", trained, audio, "--json")
    plain = json.loads(out)["text"]
    fusion = ["--beam", "4", "--lm", tmp_path / "lm", "--alpha", "0.3", "--nbest", "3"]
    code, out, err = run_cli("speech", "transcribe", trained, audio, *fusion, "--json")
    assert code == 0, err
    fused = json.loads(out)
    assert fused["text"] == plain  # a clear recording: the LM does not overrule the audio
    assert 1 <= len(fused["nbest"]) <= 3 and fused["nbest"][0]["text"] == fused["text"]
    # an overwhelming hotword bonus for a word the audio does not hold wins
    other = next(w for w in ("aaa", "bbb", "ccc") if w != plain)
    code, out, err = run_cli("speech", "transcribe", trained, audio, "--beam", "4", "--hotword",
                          other, "--hotword-weight", "30", "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["text"] != plain
    # hotwords are normalised as transcripts are: upper case is the same word
    code, out, err = run_cli("speech", "transcribe", trained, audio, "--beam", "4", "--hotword",
                          other.upper(), "--hotword-weight", "30", "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["text"] != plain, err
    # a run of another task is no language model
    code, _, err = run_cli("speech", "transcribe", trained, audio, "--lm", trained)
    assert code == 2 and "'speech' run" in err


def test_resumed_run_ends_with_the_same_weights(tone_tsv, tmp_path, run_cli):
    from safetensors.torch import load_file

    # A constant schedule: the first session's shorter budget must not change the learning rates.
    common = ["--corpus", tone_tsv, "--quiet", "--threads", "1", *TINY, "--eval-every", "0",
              "--schedule", "constant"]  # fmt: skip
    code, _, err = run_cli("speech", "train", "--out", tmp_path / "a", "--max-steps", 12, *common)
    assert code == 0, err
    code, _, err = run_cli("speech", "train", "--out", tmp_path / "b", "--max-steps", 6, *common)
    assert code == 0, err
    before = (tmp_path / "b" / "config.json").read_bytes()
    code, _, err = run_cli("speech", "train", "--resume", tmp_path / "b", "--hidden-size", "7",
                        "--max-steps", "12", "--quiet")  # fmt: skip
    assert code == 2 and "--hidden-size" in err and "only the budget" in err
    assert (
        tmp_path / "b" / "config.json"
    ).read_bytes() == before  # a refused resume writes nothing
    code, _, err = run_cli("speech", "train", "--resume", tmp_path / "b", "--max-steps", "12",
                        "--quiet")  # fmt: skip
    assert code == 0, err
    assert json.loads((tmp_path / "b" / "config.json").read_text())["train"]["max_steps"] == 12
    a = load_file(tmp_path / "a" / "last.safetensors")
    b = load_file(tmp_path / "b" / "last.safetensors")
    for name in [k for k in a if k.startswith("model.")]:
        assert torch.equal(a[name], b[name]), name


def test_global_normalisation_is_stored_and_used(tone_tsv, tmp_path, run_cli):
    from rnnkit.speech import api
    from rnnkit.speech.audio import read_audio

    argv = ["speech", "train", "--out", tmp_path / "g", "--corpus", tone_tsv, "--normalize",
            "global", "--max-steps", "2", "--quiet", *TINY]  # fmt: skip
    code, _, err = run_cli(*argv)
    assert code == 0, err
    asr = api.load(tmp_path / "g")
    mean, std = asr.stats
    assert mean.shape == std.shape == (16,) and float(std.min()) > 0
    wave = read_audio(tone_tsv.parent / "u000.wav", sample_rate=16000)
    feats = asr.featurize(wave)
    raw = api.log_mel(wave, asr.features)
    torch.testing.assert_close(feats, (raw - mean) / (std + 1e-5))


def test_bad_settings_are_one_line(trained, tone_tsv, tmp_path, run_cli, capsys):
    code, _, err = run_cli("speech", "train", "--out", tmp_path / "x", "--corpus", tone_tsv,
                           "--normalize", "loud")  # fmt: skip
    assert code == 2 and "normalize must be" in err and not (tmp_path / "x").exists()
    code, _, err = run_cli("speech", "train", "--out", tmp_path / "x", "--corpus", "nothing.tsv",
                           "--cell", "rnn")  # fmt: skip
    assert code == 2 and "cell must be one of" in err  # checked before the corpus is read
    with pytest.raises(SystemExit) as refused:  # the range is checked when parsing
        run_cli("speech", "transcribe", trained, tone_tsv.parent / "u000.wav", "--beam", "0")
    err = capsys.readouterr().err
    assert refused.value.code == 2 and "must be an integer from 1 to 100000" in err
    empty = tmp_path / "words.txt"
    empty.write_text("\n")
    code, _, err = run_cli("speech", "eval", trained, "--data", tone_tsv, "--lexicon", empty)
    assert code == 2 and "is empty" in err and err.count("\n") == 1


@pytest.mark.parametrize("limit", ["0", "-3"])
def test_eval_limit_must_be_positive(trained, tone_tsv, run_cli, capsys, limit):
    # --limit 0 used to score every utterance, --limit -3 all but the last three (or none: 0% WER).
    with pytest.raises(SystemExit) as refused:
        run_cli("speech", "eval", trained, "--data", tone_tsv, "--limit", limit)
    assert refused.value.code == 2 and "--limit" in capsys.readouterr().err


@pytest.mark.parametrize(
    "option, value", [("--alpha", "nan"), ("--alpha", "-1"), ("--beta", "inf"),
                      ("--hotword-weight", "nan")]
)  # fmt: skip
def test_fusion_weights_must_be_finite(trained, tone_tsv, run_cli, capsys, option, value):
    # --alpha nan used to decode every file to an empty transcript, exit status 0.
    with pytest.raises(SystemExit) as refused:
        run_cli("speech", "transcribe", trained, tone_tsv.parent / "u000.wav", option, value)
    assert refused.value.code == 2 and "must be a finite number" in capsys.readouterr().err


@pytest.mark.parametrize(
    "option, value, message",
    [("--vtlp", "inf", "vtlp must be in"), ("--tempo", "-0.1", "tempo must be in"),
     ("--band-limit", "nan", "band_limit must be in"), ("--clip-norm", "nan", "clip_norm >= 0")],
)  # fmt: skip
def test_augmentation_and_clipping_out_of_range_are_one_line(
    tone_tsv, tmp_path, run_cli, option, value, message
):
    # These used to be accepted: --vtlp inf, --clip-norm nan trained on (NaN weights at worst).
    code, _, err = run_cli("speech", "train", "--out", tmp_path / "x", "--corpus", tone_tsv,
                           "--max-steps", "1", option, value)  # fmt: skip
    assert code == 2 and message in err and err.count("rnnkit: error:") == 1
    assert not (tmp_path / "x" / "last.safetensors").exists()


# The users' files in the encodings editors and spreadsheets write (utf-16-le/-be: without a
# byte-order mark), naming recordings outside ASCII.
KINDS = ("latin-1", "cp1252", "utf-16-le", "utf-16-be")
NAMES = {"latin-1": "t\u00f4ne", "cp1252": "\u2019tone\u2019", "utf-16-le": "t\u00f4ne"}
NAMES["utf-16-be"] = NAMES["utf-16-le"]


def _one_line_error(run_cli, *argv):
    code, _, err = run_cli(*argv)
    assert code == 2 and err.count("\n") == 1 and err.startswith("rnnkit: error: "), err
    return err


def _renamed(tone_tsv, folder, count, name):
    """Lines ``audio<TAB>text`` of copies of the first ``count`` tone recordings, renamed
    ``name.format(i)``, in ``folder``."""
    lines = []
    for i, line in enumerate(tone_tsv.read_text().splitlines()[:count]):
        audio, text = line.split("\t")
        (folder / name.format(i)).write_bytes((tone_tsv.parent / audio).read_bytes())
        lines.append(f"{name.format(i)}\t{text}")
    return lines


@pytest.mark.parametrize("kind", KINDS)
def test_eval_reads_a_transcript_tsv_in_the_encoding_given(trained, tone_tsv, tmp_path, run_cli,
                                                           kind, encoding_advice):  # fmt: skip
    # speech had no --encoding: a TSV naming recordings outside ASCII had to be saved as UTF-8.
    utf8 = tmp_path / "utf8.tsv"
    utf8.write_text("\n".join(_renamed(tone_tsv, tmp_path, 4, NAMES[kind] + "{}.wav")) + "\n")
    tsv = tmp_path / "mine.tsv"
    tsv.write_bytes(utf8.read_text().encode(kind))
    argv = ["speech", "eval", trained, "--beam", "1", "--json", "--data"]
    assert encoding_advice(kind) in _one_line_error(run_cli, *argv, tsv)
    code, expected, _ = run_cli(*argv, utf8)
    assert code == 0 and json.loads(expected)["utterances"] == 4
    assert run_cli(*argv, tsv, "--encoding", kind) == (0, expected, "")


def test_eval_reads_librispeech_transcripts_in_the_encoding_given(
    trained, tone_tsv, tmp_path, run_cli, encoding_advice
):
    book = tmp_path / "libri" / "\u00e9"
    book.mkdir(parents=True)
    lines = _renamed(tone_tsv, book, 3, "\u00e9-1-{}.wav")
    text = "".join(f"{line.split('.')[0]} {line.split(chr(9))[1].upper()}\n" for line in lines)
    (book / "\u00e9-1.trans.txt").write_bytes(text.encode("cp1252"))
    argv = ["speech", "eval", trained, "--beam", "1", "--json", "--data", tmp_path / "libri"]
    assert encoding_advice("cp1252") in _one_line_error(run_cli, *argv)
    code, out, _ = run_cli(*argv, "--encoding", "cp1252")
    assert code == 0 and json.loads(out)["utterances"] == 3


def test_a_lexicon_is_read_in_the_encoding_given(trained, tone_tsv, tmp_path, run_cli,
                                                 encoding_advice):  # fmt: skip
    # transcribe and eval had no --encoding: a lexicon not in UTF-8 had to be saved as UTF-8.
    words = "abc\nba\ncab\n"
    utf8, mine = tmp_path / "utf8.txt", tmp_path / "mine.txt"
    utf8.write_text(words, encoding="utf-8")
    mine.write_bytes(words.encode("utf-16-be"))
    audio = [tone_tsv.parent / f"u00{i}.wav" for i in range(3)]
    argv = ["speech", "transcribe", trained, *audio, "--beam", "4", "--lexicon"]
    assert encoding_advice("utf-16-be") in _one_line_error(run_cli, *argv, mine)
    code, expected, _ = run_cli(*argv, utf8)
    assert code == 0 and {line.split("\t")[1] for line in expected.splitlines()} <= {
        "abc", "ba", "cab", ""}  # fmt: skip
    assert run_cli(*argv, mine, "--encoding", "utf-16-be") == (0, expected, "")
    # eval: --encoding is for --data and --lexicon; the run's own corpus keeps its encoding
    argv = ["speech", "eval", trained, "--split", "valid", "--limit", "3", "--json", "--lexicon"]
    code, expected, _ = run_cli(*argv, utf8)
    assert code == 0 and run_cli(*argv, mine, "--encoding", "utf-16-be") == (0, expected, "")


def test_train_reads_its_corpus_in_the_encoding_given_and_the_run_keeps_it(
    tone_tsv, tmp_path, run_cli, encoding_advice
):
    tsv = tmp_path / "mine.tsv"
    lines = _renamed(tone_tsv, tmp_path, 20, "t\u00f4ne{}.wav")
    tsv.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    out = tmp_path / "run"
    argv = ["speech", "train", "--corpus", tsv, "--out", out, "--max-steps", "1", "--quiet", *TINY]
    assert encoding_advice("latin-1") in _one_line_error(run_cli, *argv)
    assert not (out / "run.json").exists()
    assert run_cli(*argv, "--encoding", "latin-1")[0] == 0
    assert json.loads((out / "config.json").read_text())["recipe"]["encoding"] == "latin-1"
    # eval reads the run's own corpus in the encoding it was trained with
    code, text, _ = run_cli("speech", "eval", out, "--split", "valid", "--beam", "1", "--json")
    assert code == 0 and json.loads(text)["utterances"] >= 1


def test_festival_extra_share_is_checked_and_reaches_the_corpus_plan(monkeypatch):
    from rnnkit.errors import ConfigError
    from rnnkit.speech import api
    from rnnkit.speech import data as speech_data
    from rnnkit.speech.recipe import SpeechRecipe

    assert SpeechRecipe().festival_extra_share == 0.0  # the default corpus has none
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ConfigError, match="festival_extra_share must be in"):
            SpeechRecipe(festival_extra_share=bad)
    seen = {}
    monkeypatch.setattr(speech_data, "synth_corpus", lambda name, **kw: seen.update(kw) or {})
    api.corpus(SpeechRecipe(festival_extra_share=0.5, festival_share=0.2))
    assert (seen["extra_share"], seen["festival_share"]) == (0.5, 0.2)
