"""Speech synthesized on this machine: espeak-ng (training, validation, test) and flite (a second
test set from another synthesizer), deterministic from a seed, cached with a manifest.

Every utterance is a small record (:class:`Utterance`): its text, its synthesizer, voice and
settings, all drawn from ``random.Random`` seeded by (seed, split, index). So a corpus is the same
on every machine, and extending it (more utterances) keeps the ones it has. Rendering runs the
synthesizer as a subprocess, reads its WAV with soundfile, resamples to 16 kHz, applies the gain
and adds noise at the drawn signal-to-noise ratio, and writes a FLAC file atomically; files that
exist are skipped, so an interrupted build continues where it stopped and several processes can
build the same cache at once. The manifest of a split (``<split>.jsonl``) is written last.

**Split by voice.** espeak-ng's voice variants (``en-us+f3``: the variant ``f3`` gives the formant
settings of a speaker) are divided: validation and test variants never occur in training. Accents
(en-us, en-gb, Scottish, RP, Lancaster, West Midlands, Caribbean) occur in all splits.
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit.errors import RnnkitError
from rnnkit.files import atomic_path, write_text_atomic

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "oh")
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd", "en-029")  # fmt: skip
# espeak-ng's voice variants (espeak-ng --voices=variant), whispering ones left out.
VALID_VARIANTS = ("f2", "m3", "Andy", "belinda", "klatt3", "robert")
TEST_VARIANTS = ("f4", "m6", "m8", "Annie", "david", "klatt5", "linda", "paul", "steph2", "zac")
TRAIN_VARIANTS = (
    "adam", "Alex", "Alicia", "Andrea", "antonio", "aunty", "benjamin", "boris", "caleb",
    "Denis", "Diogo", "ed", "edward", "edward2", "Gene", "Gene2", "gustave", "Henrique", "Hugo",
    "iven", "iven2", "iven3", "iven4", "Jacky", "john", "kaukovalta", "Lee", "marcelo", "Marco",
    "Mario", "max", "Michael", "michel", "miguel", "Mike", "Mr", "Nguyen", "pablo", "pedro",
    "quincy", "rob", "robosoft", "robosoft2", "robosoft3", "steph", "steph3", "Storm", "Tweaky",
    "anika", "AnxiousAndy", "f1", "f3", "f5", "grandpa", "grandma", "klatt", "klatt2", "klatt4",
    "klatt6", "m1", "m2", "m4", "m5", "m7", "norbert", "sandro", "shelby", "travis", "victor",
    "announcer", "anikaRobot", "croak", "Demonic", "fast", "RicishayMax", "RicishayMax2",
    "RicishayMax3", "robosoft4", "robosoft5", "robosoft6", "robosoft7", "robosoft8", "UniRobot",
)  # fmt: skip
# Training hears one more accent than validation and test (New York City), and wider ranges of
# rate and pitch: more variety for the model, while the held-out splits stay as they were.
TRAIN_ACCENTS = (*ACCENTS, "en-us-nyc")
TRAIN_RATE = (100.0, 270.0)  # words per minute (held-out splits: 120-240)
TRAIN_PITCH = (0.0, 99.0)  # espeak-ng's 0-99 scale (held-out splits: 15-85)
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
# The plan's version is part of a corpus's cache folder: a new plan builds a new corpus beside
# the old one (2: every espeak-ng variant but the whispering ones, New York City, wider ranges).
PLAN_VERSION = 2
PACKAGES = {"espeak-ng": "espeak-ng", "flite": "flite"}  # program -> Debian package


class SynthesizerMissing(RnnkitError):
    """espeak-ng or flite is not installed."""


def require(program: str) -> str:
    """The path of ``program``, or :class:`SynthesizerMissing` naming the package to install."""
    found = shutil.which(program)
    if found is None:
        package = PACKAGES[program]
        raise SynthesizerMissing(
            f"{program} is not installed; install the Debian package {package} "
            f"(sudo apt-get install {package}) or train on your own recordings (--data FILE.tsv)"
        )
    return found


@dataclass(frozen=True)
class Utterance:
    """One synthesized utterance: what to say, who says it, how; and where it is stored."""

    id: str  # file stem, e.g. "train-000042"
    split: str  # "train", "valid", "test" or "flite"
    text: str  # the transcript
    synthesizer: str  # "espeak-ng" or "flite"
    voice: str  # "en-us+f3" or a flite voice
    rate: float  # espeak-ng: words per minute; flite: duration stretch
    pitch: float  # espeak-ng: 0-99; flite: mean F0 in Hz
    gap: int  # espeak-ng: extra pause between words, in 10 ms units
    gain_db: float  # applied to the synthesizer's output
    snr_db: float  # additive noise level (signal-to-noise ratio)
    noise: str  # "white" or "pink"
    seed: int  # the noise's seed


def digit_text(rng: random.Random) -> str:
    """A TIDIGITS-style string: 1 to 7 words over zero..nine and "oh"."""
    return " ".join(rng.choice(DIGITS) for _ in range(rng.randint(1, 7)))


def plan(
    split: str, count: int, *, seed: int, texts: Callable[[random.Random], str] = digit_text
) -> list[Utterance]:
    """The first ``count`` utterances of ``split`` (a prefix of any longer plan)."""
    variants = {"valid": VALID_VARIANTS, "test": TEST_VARIANTS}
    out = []
    for index in range(count):
        rng = random.Random(f"{seed}/{split}/{index}")
        text = texts(rng)
        common = dict(gain_db=rng.uniform(-12.0, 0.0), snr_db=rng.uniform(10.0, 30.0),
                      noise=rng.choice(("white", "pink")), seed=rng.getrandbits(32))  # fmt: skip
        if split == "flite":
            utt = Utterance(f"{split}-{index:06d}", split, text, "flite",
                            rng.choice(FLITE_VOICES), rng.uniform(0.8, 1.25),
                            rng.uniform(90.0, 180.0), 0, **common)  # fmt: skip
        elif split == "train":
            voice = f"{rng.choice(TRAIN_ACCENTS)}+{rng.choice(TRAIN_VARIANTS)}"
            utt = Utterance(f"{split}-{index:06d}", split, text, "espeak-ng", voice,
                            rng.uniform(*TRAIN_RATE), rng.uniform(*TRAIN_PITCH),
                            rng.randint(0, 10), **common)  # fmt: skip
        else:
            voice = f"{rng.choice(ACCENTS)}+{rng.choice(variants[split])}"
            utt = Utterance(f"{split}-{index:06d}", split, text, "espeak-ng", voice,
                            rng.uniform(120.0, 240.0), rng.uniform(15.0, 85.0),
                            rng.randint(0, 8), **common)  # fmt: skip
        out.append(utt)
    return out


def synthesize(utt: Utterance) -> np.ndarray:
    """Run the synthesizer for ``utt``: float32 samples at 16 kHz, gain and noise applied."""
    import soundfile

    from rnnkit.speech.audio import resample

    program = require(utt.synthesizer)
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "out.wav")
        if utt.synthesizer == "espeak-ng":
            cmd = [program, "-v", utt.voice, "-s", str(round(utt.rate)), "-p",
                   str(round(utt.pitch)), "-g", str(utt.gap), "-w", wav, utt.text]  # fmt: skip
        else:
            cmd = [program, "-voice", utt.voice, "--setf", f"duration_stretch={utt.rate:.3f}",
                   "--setf", f"int_f0_target_mean={utt.pitch:.1f}", "-t", utt.text,
                   "-o", wav]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, timeout=60)
        if result.returncode != 0 or not os.path.exists(wav):
            message = result.stderr.decode(errors="replace").strip()
            raise RnnkitError(f"{utt.synthesizer} failed on {utt.id} ({message[:200]})")
        data, rate = soundfile.read(io.BytesIO(Path(wav).read_bytes()), dtype="float32")
    import torch

    wave = resample(torch.from_numpy(np.asarray(data).reshape(len(data), -1).mean(1)), rate,
                    SAMPLE_RATE).numpy()  # fmt: skip
    return add_noise(wave * 10 ** (utt.gain_db / 20), utt.snr_db, utt.noise, utt.seed)


def add_noise(wave: np.ndarray, snr_db: float, kind: str, seed: int) -> np.ndarray:
    """``wave`` plus white or pink (1/f power) noise at ``snr_db`` below the speech's power."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(len(wave))
    if kind == "pink":  # shape the spectrum: amplitude 1/sqrt(f)
        spectrum = np.fft.rfft(noise)
        spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1.0))
        noise = np.fft.irfft(spectrum, n=len(wave))
    active = wave[np.abs(wave) > 0.02 * (np.abs(wave).max() + 1e-9)]  # speech, not the silences
    power = float(np.mean(active**2)) if len(active) else 1e-6
    noise *= np.sqrt(power / 10 ** (snr_db / 10) / (np.mean(noise**2) + 1e-12))
    return np.clip(wave + noise, -1.0, 1.0).astype(np.float32)


def build(
    root: Path,
    utterances: Sequence[Utterance],
    *,
    workers: int | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Render the utterances missing under ``root`` (FLAC, atomic writes, ``workers`` threads
    each running one synthesizer process at a time) and write the split manifests.

    Returns the manifest records (one per utterance: path, text and the utterance's settings).
    """
    import soundfile

    root.mkdir(parents=True, exist_ok=True)
    for program in {u.synthesizer for u in utterances}:
        require(program)
    # A file is reused if its manifest record (when there is one) has the planned settings: a
    # corpus built by an older plan is rendered again, not mixed with the new one.
    saved = {r["id"]: r for s in {u.split for u in utterances} for r in read_manifest(root, s)}
    records = [{"path": f"{u.split}/{u.id}.flac", **asdict(u)} for u in utterances]
    todo = [u for u, r in zip(utterances, records)
            if not (root / r["path"]).exists() or saved.get(u.id, r) != r]  # fmt: skip

    def render(utt: Utterance) -> None:
        path = root / utt.split / f"{utt.id}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        wave = synthesize(utt)
        with atomic_path(path) as tmp:
            soundfile.write(tmp, wave, SAMPLE_RATE, format="FLAC", subtype="PCM_16")

    if todo:
        logger.info("synthesizing %d utterances into %s", len(todo), root)
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="utt", disable=not progress, desc="synthesizing")
        # Threads suffice: the work happens in the synthesizer processes and in NumPy/torch.
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            for _ in pool.map(render, todo):
                bar.update(1)
        bar.close()
    for split in sorted({u.split for u in utterances}):
        lines = [json.dumps(r) for r in records if r["split"] == split]
        write_text_atomic(root / f"{split}.jsonl", "\n".join(lines) + "\n")
    return records


def read_manifest(root: Path, split: str) -> list[dict[str, Any]]:
    """The records of ``split`` in a built corpus (empty if it was never built)."""
    path = root / f"{split}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
