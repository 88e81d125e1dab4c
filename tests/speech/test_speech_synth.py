"""Synthesized corpora: deterministic plans, voices split, noise at the asked SNR, and a handful
of real espeak-ng, festival and flite utterances (CI installs them)."""

import io
import json
import subprocess

import numpy as np
import pytest
import soundfile

from rnnkit.speech import synth


def test_plans_are_deterministic_prefixes_and_split_by_voice():
    a = synth.plan("train", 40, seed=3)
    assert a == synth.plan("train", 40, seed=3)
    assert a[:10] == synth.plan("train", 10, seed=3)
    assert a != synth.plan("train", 40, seed=4)
    variants = {
        split: {u.voice.split("+")[1] for u in synth.plan(split, 300, seed=0)}
        for split in ("train", "valid", "test")
    }
    assert variants["train"] <= set(synth.TRAIN_VARIANTS)
    assert not variants["train"] & (variants["valid"] | variants["test"])
    assert not variants["valid"] & variants["test"]
    words = {w for u in a for w in u.text.split()}
    assert words <= set(synth.DIGITS)
    assert all(1 <= len(u.text.split()) <= 7 for u in a)
    assert all(10 <= u.snr_db <= 30 for u in a)
    assert {u.synthesizer for u in synth.plan("flite", 20, seed=0)} == {"flite"}


@pytest.mark.parametrize("kind", ["white", "pink"])
def test_noise_is_added_at_the_requested_snr(kind):
    t = np.arange(16000) / 16000
    speech = 0.3 * np.sin(2 * np.pi * 300 * t)
    noisy = synth.add_noise(speech, 20.0, kind, seed=1)
    noise = noisy - speech
    snr = 10 * np.log10(np.mean(speech**2) / np.mean(noise**2))
    assert snr == pytest.approx(20.0, abs=0.3)


def test_espeak_and_flite_utterances_are_built_cached_and_kept(tmp_path):
    utts = synth.plan("train", 3, seed=0) + synth.plan("flite", 2, seed=0)
    records = synth.build(tmp_path, utts, workers=2)
    assert [r["split"] for r in records] == ["train"] * 3 + ["flite"] * 2
    assert len(synth.read_manifest(tmp_path, "train")) == 3
    for record in records:
        data, rate = soundfile.read(tmp_path / record["path"])
        assert rate == 16000 and data.ndim == 1
        assert 0.2 < len(data) / rate < 10.0
        assert np.abs(data).max() > 0.01
    first = tmp_path / records[0]["path"]
    stamp = first.stat().st_mtime_ns
    more = synth.plan("train", 4, seed=0)
    synth.build(tmp_path, more, workers=1)  # extending keeps what exists
    assert first.stat().st_mtime_ns == stamp
    assert len(synth.read_manifest(tmp_path, "train")) == 4


def test_training_hears_every_variant_and_more_accents_and_ranges_than_held_out_voices():
    train = synth.plan("train", 3000, seed=0)
    assert {u.voice.split("+")[1] for u in train} == set(synth.TRAIN_VARIANTS)
    assert {u.voice.split("+")[0] for u in train} == set(synth.TRAIN_ACCENTS)
    held_out = synth.plan("valid", 200, seed=0) + synth.plan("test", 300, seed=0)
    assert {u.voice.split("+")[0] for u in held_out} <= set(synth.ACCENTS)
    assert all(120 <= u.rate <= 240 and 15 <= u.pitch <= 85 for u in held_out)
    assert min(u.rate for u in train) < 120 and max(u.rate for u in train) > 240
    assert min(u.pitch for u in train) < 15 and max(u.pitch for u in train) > 85


def test_a_file_from_another_plan_is_rendered_again(tmp_path):
    utts = synth.plan("train", 2, seed=0)
    records = synth.build(tmp_path, utts, workers=1)
    stamps = [(tmp_path / r["path"]).stat().st_mtime_ns for r in records]
    old = [dict(r) for r in records]
    old[0]["voice"] = "en-us+m1"  # as if an older plan had drawn another voice for it
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old))
    synth.build(tmp_path, utts, workers=1)
    assert (tmp_path / records[0]["path"]).stat().st_mtime_ns != stamps[0]
    assert (tmp_path / records[1]["path"]).stat().st_mtime_ns == stamps[1]
    assert synth.read_manifest(tmp_path, "train") == records


def test_festival_share_replaces_training_utterances_and_keeps_the_rest():
    plain = synth.plan("train", 400, seed=0)
    mixed = synth.plan("train", 400, seed=0, festival_share=0.3)
    assert mixed == synth.plan("train", 400, seed=0, festival_share=0.3)
    assert {u.synthesizer for u in plain} == {"espeak-ng"}
    festival = [u for u in mixed if u.synthesizer == "festival"]
    assert 0.2 < len(festival) / len(mixed) < 0.4
    # Same index, same text, gain and noise; only who speaks differs. The espeak-ng utterances
    # are those of the plain plan, and a larger share only adds festival ones.
    espeak = {u.id: u for u in plain}
    for u in mixed:
        twin = espeak[u.id.replace("-f", "-")]
        assert u == twin if u.synthesizer == "espeak-ng" else u.text == twin.text
    more = {u.id for u in synth.plan("train", 400, seed=0, festival_share=0.6)}
    assert {u.id for u in festival} < more
    assert {u.voice for u in festival} <= set(synth.FESTIVAL_VOICES)
    assert not {"kal_diphone", "us_slt_hts", "cmu_us_slt_arctic_hts"} & set(synth.FESTIVAL_VOICES)
    assert all(synth.FESTIVAL_STRETCH[0] <= u.rate <= synth.FESTIVAL_STRETCH[1] for u in festival)
    assert all(synth.FESTIVAL_SPEED[0] <= u.pitch <= synth.FESTIVAL_SPEED[1] for u in festival)
    for split in ("valid", "test", "flite"):  # held-out splits: never festival, never changed
        assert synth.plan(split, 50, seed=0, festival_share=1.0) == synth.plan(split, 50, seed=0)
    proxy = synth.plan("flite-valid", 50, seed=0)
    assert {u.synthesizer for u in proxy} == {"flite"}
    assert [u.text for u in proxy] != [u.text for u in synth.plan("flite", 50, seed=0)]


def test_festival_commands_respell_digits_for_voices_of_other_languages():
    def utt(voice):
        return synth.Utterance("train-f000001", "train", "three oh seven", "festival", voice,
                               1.25, 1.0, 0, 0.0, 20.0, "white", 1)  # fmt: skip

    english = synth.festival_commands(utt("ked_diphone"), "/x/a.wav")
    assert "(voice_ked_diphone)" in english and "'Duration_Stretch 1.250" in english
    assert '(SynthText "three oh seven") "/x/a.wav"' in english
    assert '"tri ou seven"' in synth.festival_commands(utt("lp_diphone"), "/x/a.wav")
    assert '"trii ou seven"' in synth.festival_commands(utt("hy_fi_mv_diphone"), "/x/a.wav")
    for language, words in synth.RESPELLINGS.items():
        assert len(words) == len(synth.DIGITS) and all(w.isalpha() for w in words)
        # each in its language's script: Cyrillic for Russian, plain ASCII Latin for the others
        # (the Catalan voice spells out letters with accents instead of reading them)
        assert all(w.isascii() != (language == "russian") for w in words)
    for language, package in synth.ALL_FESTIVAL_VOICES.values():
        assert (language is None or language in synth.RESPELLINGS) and package.startswith("festvox")


def test_festival_commands_of_the_hts_and_unit_selection_voices():
    def utt(voice, rate):
        return synth.Utterance("train-g000001", "train", "three oh two", "festival", voice,
                               rate, 1.0, 0, 0.0, 20.0, "white", 1)  # fmt: skip

    hts = synth.festival_commands(utt("upc_ca_ona_hts", 1.25), "/x/a.wav")
    assert "(voice_upc_ca_ona_hts)" in hts and '(SynthText "thri ou tu") "/x/a.wav"' in hts
    # HTS ignores Duration_Stretch: hts_engine's speed -r is its inverse (1.25 longer: 0.8)
    assert '(list "-r" 0.800)' in hts and "upc_ca_ona_hts::hts_engine_params" in hts
    assert '"-r" 1.250' in synth.festival_commands(utt("upc_ca_ona_hts", 0.8), "/x/a.wav")
    clunits = synth.festival_commands(utt("msu_ru_nsh_clunits", 1.25), "/x/a.wav")
    assert '(SynthText "фри оо тъу")' in clunits and '"-r"' not in clunits
    assert '"-r"' not in synth.festival_commands(utt("ked_diphone", 1.25), "/x/a.wav")


def test_extra_share_gives_festival_utterances_to_the_other_kinds_and_keeps_the_rest():
    base = synth.plan("train", 800, seed=0, festival_share=0.3)
    assert synth.plan("train", 800, seed=0, festival_share=0.3, extra_share=0.0) == base
    mixed = synth.plan("train", 800, seed=0, festival_share=0.3, extra_share=0.4)
    assert mixed == synth.plan("train", 800, seed=0, festival_share=0.3, extra_share=0.4)
    extra = [u for u in mixed if u.id.startswith("train-g")]
    festival = [u for u in base if u.synthesizer == "festival"]
    assert 0.3 < len(extra) / len(festival) < 0.5
    assert {u.voice for u in extra} == set(synth.FESTIVAL_EXTRA_VOICES)
    assert not set(synth.FESTIVAL_EXTRA_VOICES) & set(synth.FESTIVAL_VOICES)
    # Same index, same text and settings as the diphone utterance it replaces; every other
    # utterance (espeak-ng and festival) is the base plan's, so one cache holds both plans.
    by_index = {u.id[-6:]: u for u in base}
    for u in mixed:
        twin = by_index[u.id[-6:]]
        if u.id.startswith("train-g"):
            assert twin.synthesizer == "festival" and u.synthesizer == "festival"
            assert {**vars(u), "id": 0, "voice": 0} == {**vars(twin), "id": 0, "voice": 0}
        else:
            assert u == twin
    more = synth.plan("train", 800, seed=0, festival_share=0.3, extra_share=0.8)
    assert {u.id for u in extra} < {u.id for u in more}
    everything = synth.plan("train", 800, seed=0, festival_share=0.3, extra_share=1.0)
    assert {u.id for u in everything if u.synthesizer == "festival"} == {
        u.id.replace("-f", "-g") for u in festival
    }
    for split in ("valid", "test", "flite", "flite-valid"):  # held-out splits never change
        assert synth.plan(split, 50, seed=0, festival_share=1.0, extra_share=1.0) == synth.plan(
            split, 50, seed=0
        )
    # flite's test speakers (CMU ARCTIC slt, kal, awb, rms) are in no festival voice of training
    for voice in synth.ALL_FESTIVAL_VOICES:
        assert not any(name in voice for name in ("slt", "kal", "awb", "rms", "arctic"))


def test_festival_speed_raises_every_frequency_and_shortens_the_audio():
    rate, speed = 16000, 1.1
    t = np.arange(rate) / rate
    wav = io.BytesIO()
    soundfile.write(wav, 0.5 * np.sin(2 * np.pi * 1000 * t), rate, format="WAV")
    utt = synth.Utterance("train-f000001", "train", "one", "festival", "ked_diphone", 1.0, speed,
                          0, 0.0, 60.0, "white", 1)  # fmt: skip
    wave = synth.finish(utt, wav.getvalue())
    assert len(wave) == pytest.approx(rate / speed, rel=0.01)
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    peak = np.argmax(spectrum) * rate / len(wave)
    assert peak == pytest.approx(1000 * speed, rel=0.01)


def test_missing_festival_or_voice_names_the_debian_packages(monkeypatch):
    monkeypatch.setattr(synth.shutil, "which", lambda program: None)
    with pytest.raises(synth.SynthesizerMissing, match="festival festvox-kdlpc16k .*share 0"):
        synth.require("festival")
    monkeypatch.setattr(synth.shutil, "which", lambda program: "/usr/bin/festival")

    def voice_list(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 0, b"(ked_diphone lp_diphone)\n", b"")

    monkeypatch.setattr(synth.subprocess, "run", voice_list)
    synth.require_festival_voices({"ked_diphone", "lp_diphone"})
    with pytest.raises(synth.SynthesizerMissing, match=r"czech_ph is not .* festvox-czech-ph \("):
        synth.require_festival_voices({"ked_diphone", "czech_ph"})
    with pytest.raises(synth.SynthesizerMissing, match=r"festvox-ru \(.*--festival-extra-share 0"):
        synth.require_festival_voices({"ked_diphone", "msu_ru_nsh_clunits"})


def test_hts_and_unit_selection_voices_speak(tmp_path):
    plan = synth.plan("train", 60, seed=0, festival_share=0.5, extra_share=1.0)
    utts = [next(u for u in plan if u.voice == voice) for voice in synth.FESTIVAL_EXTRA_VOICES]
    records = synth.build(tmp_path, utts, workers=2)
    for utt, record in zip(utts, records):
        data, rate = soundfile.read(tmp_path / record["path"])
        assert rate == 16000 and data.ndim == 1 and np.abs(data).max() > 0.01
        # about 0.2-1.2 s a word at the drawn speed (a voice that spelled the respelling out
        # letter by letter, or said nothing, would fall outside)
        assert 0.15 < len(data) / rate / len(utt.text.split()) < 1.5


def test_festival_utterances_are_built_in_batches(tmp_path, monkeypatch):
    utts = [u for u in synth.plan("train", 60, seed=0, festival_share=0.5)
            if u.synthesizer == "festival"][:4]  # fmt: skip
    records = synth.build(tmp_path, utts, workers=2)
    assert [r["synthesizer"] for r in records] == ["festival"] * 4
    monkeypatch.setattr(synth.shutil, "which", lambda program: None)
    assert synth.build(tmp_path, utts) == records  # built: no synthesizer needed to read it
    for record in records:
        data, rate = soundfile.read(tmp_path / record["path"])
        assert rate == 16000 and data.ndim == 1
        assert 0.2 < len(data) / rate < 10.0
        assert np.abs(data).max() > 0.01


def _fake_synthesis(monkeypatch):
    def fake_many(batch):
        return [np.zeros(800, dtype=np.float32) for _ in batch]

    monkeypatch.setattr(synth, "synthesize_many", fake_many)
    monkeypatch.setattr(synth, "require", lambda program: program)


def test_a_build_says_what_it_synthesizes_and_how_far_it_is(tmp_path, monkeypatch):
    """The first `speech train` spends minutes synthesizing; without a terminal it was silent."""
    _fake_synthesis(monkeypatch)
    lines = []
    synth.build(tmp_path, synth.plan("train", 100, seed=0), workers=2, report=lines.append)
    said = f"synthesizing 100 utterances into {tmp_path} (cached: later runs reuse them)"
    assert lines[0] == said
    assert lines[1:] == [f"synthesized {n} of 100 utterances" for n in range(10, 100, 10)]
    lines.clear()
    synth.build(tmp_path, synth.plan("train", 100, seed=0), workers=2, report=lines.append)
    assert lines == []  # built: nothing to say
    synth.build(tmp_path, synth.plan("train", 130, seed=0), progress=True, report=lines.append)
    assert lines == [f"synthesizing 30 utterances into {tmp_path} (cached: later runs reuse them)"]


def test_speech_synth_reports_on_stderr_unless_quiet(tmp_path, monkeypatch, run_cli):
    _fake_synthesis(monkeypatch)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    sizes = ["--valid-utterances", "10", "--test-utterances", "10", "--flite-utterances", "10"]
    code, out, err = run_cli("speech", "synth", "--train-utterances", "20", *sizes)
    assert code == 0 and "train" in out
    assert "synthesizing 60 utterances into" in err and "synthesized 6 of 60 utterances" in err
    code, _, err = run_cli("speech", "synth", "--train-utterances", "30", *sizes, "--quiet")
    assert code == 0 and err == ""
