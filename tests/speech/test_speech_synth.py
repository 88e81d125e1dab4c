"""Synthesized corpora: deterministic plans, voices split, noise at the asked SNR, and a handful
of real espeak-ng and flite utterances (CI installs both)."""

import json

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
