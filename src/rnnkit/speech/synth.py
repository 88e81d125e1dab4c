"""Speech synthesized on this machine: espeak-ng (training, validation, test), festival (a share of
training) and flite (a second test set from another synthesizer), deterministic from a seed,
cached with a manifest.

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

**Two synthesis methods in training.** Every espeak-ng voice is formant synthesis; flite's test
voices are diphone concatenation of a recording (kal) and statistical parametric (awb, rms, slt).
So a share of the training utterances (``festival``, plan 3) is spoken by festival's diphone
voices, built from recordings of other people than flite's: the American English ``ked`` and
Italian, Czech and Finnish speakers, who read the digit words from respellings in their own
language's spelling (accented English). festival's kal and slt voices are flite's test speakers
and are never used.

**Other kinds of synthesis, an option** (``extra_share``, recipe field ``festival_extra_share``,
0 by default): that share of the festival utterances is spoken instead by two festival voices
of kinds the diphone voices are not, a Catalan statistical parametric (HTS) voice and a Russian
unit-selection one, reading Catalan and Cyrillic respellings. Their utterances have names of
their own (``train-g000042``), so the default corpus is unchanged and both live in one cache.
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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit.errors import RnnkitError
from rnnkit.files import atomic_path, write_text_atomic
from rnnkit.pool import map_in_threads

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
# The digit words respelled for festival voices of other languages, so that each reads them
# roughly as an English speaker says them (with its accent).
RESPELLINGS = {
    "italian": ("ziro", "uan", "tu", "tri", "for", "faiv", "siks", "seven", "eit", "nain", "ou"),
    "czech": ("zirou", "uan", "tu", "tri", "for", "fajv", "siks", "sevn", "ejt", "najn", "ou"),
    "finnish": ("siirou", "uan", "tuu", "trii", "foor", "faiv", "siks", "seven", "eit", "nain",
                "ou"),
    "catalan": ("ziro", "uan", "tu", "thri", "for", "faiv", "sics", "seven", "eit", "nain", "ou"),
    "russian": ("зироу", "уан", "тъу", "фри", "фор", "фаив", "сиикс", "севен", "эйт", "наин", "оо"),
}  # fmt: skip
# festival voices of training -> (language of the respelling or None for English, Debian package).
FESTIVAL_VOICES = {
    "ked_diphone": (None, "festvox-kdlpc16k"),
    "lp_diphone": ("italian", "festvox-italp16k"),
    "pc_diphone": ("italian", "festvox-itapc16k"),
    "czech_dita": ("czech", "festvox-czech-dita"),
    "czech_krb": ("czech", "festvox-czech-krb"),
    "czech_machac": ("czech", "festvox-czech-machac"),
    "czech_ph": ("czech", "festvox-czech-ph"),
    "suo_fi_lj_diphone": ("finnish", "festvox-suopuhe-lj"),
    "hy_fi_mv_diphone": ("finnish", "festvox-suopuhe-mv"),
}
# festival voices of other kinds than diphone concatenation (festival_extra_share): statistical
# parametric (HTS: its speed, 1 / the duration stretch, is hts_engine's -r) and unit selection
# (clunits: festival has no duration control for it; the playback speed still varies).
FESTIVAL_EXTRA_VOICES = {
    "upc_ca_ona_hts": ("catalan", "festvox-ca-ona-hts"),
    "msu_ru_nsh_clunits": ("russian", "festvox-ru"),
}
ALL_FESTIVAL_VOICES = {**FESTIVAL_VOICES, **FESTIVAL_EXTRA_VOICES}
FESTIVAL_STRETCH = (0.8, 1.3)  # festival's Duration_Stretch (1: the voice's own durations)
FESTIVAL_SPEED = (0.88, 1.12)  # playback speed: pitch and formants scaled by it, length by 1/it
FESTIVAL_BATCH = 25  # utterances per festival process (its start costs 0.2-0.3 CPU-seconds)
# The plan's version is part of a corpus's cache folder: a new plan builds a new corpus beside
# the old one (2: every espeak-ng variant but the whispering ones, New York City, wider ranges;
# 3: a share of training utterances spoken by festival's diphone voices).
PLAN_VERSION = 3
FESTIVAL_PACKAGES = " ".join(["festival", *(package for _, package in FESTIVAL_VOICES.values())])
# program -> Debian packages
PACKAGES = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": FESTIVAL_PACKAGES}


class SynthesizerMissing(RnnkitError):
    """espeak-ng, flite, festival or a festival voice is not installed."""


def require(program: str) -> str:
    """The path of ``program``, or :class:`SynthesizerMissing` naming the package to install."""
    found = shutil.which(program)
    if found is None:
        raise missing(program, PACKAGES[program])
    return found


def missing(what: str, packages: str, option: str = "--festival-share") -> SynthesizerMissing:
    plural = "s" if " " in packages else ""
    hint = f" (or train with {option} 0)" if "festival" in what else ""
    return SynthesizerMissing(
        f"{what} is not installed; install the Debian package{plural} {packages} "
        f"(sudo apt-get install {packages}){hint} or train on your own recordings "
        f"(--corpus FILE.tsv)"
    )


def require_festival_voices(voices: set[str]) -> None:
    """:class:`SynthesizerMissing` naming the Debian packages of the festival voices missing."""
    program = require("festival")
    result = subprocess.run([program, "--pipe"], input=b"(print (voice.list))\n",
                            capture_output=True, timeout=60)  # fmt: skip
    known = set(result.stdout.decode(errors="replace").strip("()\n ").split())
    absent = sorted(voices - known)
    if absent:
        packages = " ".join(ALL_FESTIVAL_VOICES[v][1] for v in absent)
        extra = set(absent) <= set(FESTIVAL_EXTRA_VOICES)
        raise missing(f"the festival voice{'s' if len(absent) > 1 else ''} "
                      f"{', '.join(absent)}", packages,
                      "--festival-extra-share" if extra else "--festival-share")  # fmt: skip


@dataclass(frozen=True)
class Utterance:
    """One synthesized utterance: what to say, who says it, how; and where it is stored."""

    id: str  # file stem, e.g. "train-000042"
    split: str  # "train", "valid", "test" or "flite"
    text: str  # the transcript
    synthesizer: str  # "espeak-ng", "festival" or "flite"
    voice: str  # "en-us+f3", a festival voice or a flite voice
    rate: float  # espeak-ng: words per minute; festival, flite: duration stretch
    pitch: float  # espeak-ng: 0-99; flite: mean F0 in Hz; festival: playback speed (pitch factor)
    gap: int  # espeak-ng: extra pause between words, in 10 ms units
    gain_db: float  # applied to the synthesizer's output
    snr_db: float  # additive noise level (signal-to-noise ratio)
    noise: str  # "white" or "pink"
    seed: int  # the noise's seed


def digit_text(rng: random.Random) -> str:
    """A TIDIGITS-style string: 1 to 7 words over zero..nine and "oh"."""
    return " ".join(rng.choice(DIGITS) for _ in range(rng.randint(1, 7)))


def plan(
    split: str,
    count: int,
    *,
    seed: int,
    texts: Callable[[random.Random], str] = digit_text,
    festival_share: float = 0.0,
    extra_share: float = 0.0,
) -> list[Utterance]:
    """The first ``count`` utterances of ``split`` (a prefix of any longer plan).

    ``festival_share`` of the training utterances (digits only) are spoken by festival voices.
    Which ones, and their settings, come from a generator of their own, so the espeak-ng
    utterances are the same at any share, and a festival utterance has its own id
    (``train-f000042``): corpora of several shares share one cache. ``extra_share`` of the
    festival utterances are spoken by :data:`FESTIVAL_EXTRA_VOICES` instead (same text and
    settings, chosen by a generator of their own, named ``train-g000042``).
    """
    variants = {"valid": VALID_VARIANTS, "test": TEST_VARIANTS}
    out = []
    for index in range(count):
        rng = random.Random(f"{seed}/{split}/{index}")
        text = texts(rng)
        common = dict(gain_db=rng.uniform(-12.0, 0.0), snr_db=rng.uniform(10.0, 30.0),
                      noise=rng.choice(("white", "pink")), seed=rng.getrandbits(32))  # fmt: skip
        other = random.Random(f"{seed}/{split}/{index}/festival")
        if split == "train" and other.random() < festival_share:
            name, voice = f"{split}-f{index:06d}", other.choice(sorted(FESTIVAL_VOICES))
            kind = random.Random(f"{seed}/{split}/{index}/festival-kind")
            if kind.random() < extra_share:
                name, voice = f"{split}-g{index:06d}", kind.choice(sorted(FESTIVAL_EXTRA_VOICES))
            utt = Utterance(name, split, text, "festival", voice,
                            other.uniform(*FESTIVAL_STRETCH), other.uniform(*FESTIVAL_SPEED), 0,
                            **common)  # fmt: skip
        elif split.startswith("flite"):
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
    return synthesize_many([utt])[0]


def synthesize_many(utts: Sequence[Utterance]) -> list[np.ndarray]:
    """Samples of each of ``utts`` (one synthesizer, festival: one process for them all)."""
    (synthesizer,) = {u.synthesizer for u in utts}
    program = require(synthesizer)
    with tempfile.TemporaryDirectory() as tmp:
        wavs = [os.path.join(tmp, f"{u.id}.wav") for u in utts]
        if synthesizer == "festival":
            script = "\n".join(festival_commands(u, wav) for u, wav in zip(utts, wavs))
            runs = [([program, "--pipe"], script.encode())]
        elif synthesizer == "espeak-ng":
            runs = [([program, "-v", u.voice, "-s", str(round(u.rate)), "-p", str(round(u.pitch)),
                      "-g", str(u.gap), "-w", wav, u.text], None)
                    for u, wav in zip(utts, wavs)]  # fmt: skip
        else:
            runs = [([program, "-voice", u.voice, "--setf", f"duration_stretch={u.rate:.3f}",
                      "--setf", f"int_f0_target_mean={u.pitch:.1f}", "-t", u.text, "-o", wav],
                     None) for u, wav in zip(utts, wavs)]  # fmt: skip
        for cmd, stdin in runs:
            result = subprocess.run(cmd, input=stdin, capture_output=True, timeout=600)
            if result.returncode != 0:
                raise failed(utts, result.stderr)
        waves = []
        for utt, wav in zip(utts, wavs):
            if not os.path.exists(wav):
                raise failed([utt], result.stderr)
            waves.append(finish(utt, Path(wav).read_bytes()))
    return waves


def festival_commands(utt: Utterance, wav: str) -> str:
    """festival's commands to say ``utt`` (its voice, duration stretch) into ``wav``."""
    language = ALL_FESTIVAL_VOICES[utt.voice][0]
    words = utt.text.split()
    if language is not None:
        words = [RESPELLINGS[language][DIGITS.index(w)] for w in words]
    speed = ""  # an HTS voice ignores Duration_Stretch: hts_engine's speed is 1 / the stretch
    if utt.voice.endswith("_hts"):
        speed = (f"(set! hts_engine_params (append {utt.voice}::hts_engine_params "
                 f"(list (list \"-r\" {1 / utt.rate:.3f}))))\n")  # fmt: skip
    return (f"(voice_{utt.voice})\n(Parameter.set 'Duration_Stretch {utt.rate:.3f})\n{speed}"
            f"(utt.save.wave (SynthText \"{' '.join(words)}\") \"{wav}\" 'riff)")  # fmt: skip


def failed(utts: Sequence[Utterance], stderr: bytes) -> RnnkitError:
    message = stderr.decode(errors="replace").strip()
    return RnnkitError(f"{utts[0].synthesizer} failed on {utts[0].id} ({message[-200:]})")


def finish(utt: Utterance, wav: bytes) -> np.ndarray:
    """A synthesizer's WAV as float32 samples at 16 kHz (festival: at the utterance's playback
    speed), with the utterance's gain and noise."""
    import soundfile
    import torch

    from rnnkit.speech.audio import resample

    data, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
    if utt.synthesizer == "festival":  # played faster: every frequency up, the length down
        rate = 200 * round(rate * utt.pitch / 200)  # a multiple of 200 Hz: few resampler phases
    mono = torch.from_numpy(np.asarray(data).reshape(len(data), -1).mean(1))
    wave = resample(mono, rate, SAMPLE_RATE).numpy()
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
    report: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Render the utterances missing under ``root`` (FLAC, atomic writes, ``workers`` threads
    each running one synthesizer process at a time) and write the split manifests.

    ``report`` (the CLI's progress lines) hears what is synthesized and where, then, without a
    progress bar, every tenth of the work: the first use takes minutes and must not be silent.

    Returns the manifest records (one per utterance: path, text and the utterance's settings).
    """
    import soundfile

    root.mkdir(parents=True, exist_ok=True)
    # A file is reused if its manifest record (when there is one) has the planned settings: a
    # corpus built by an older plan is rendered again, not mixed with the new one.
    saved = {r["id"]: r for s in {u.split for u in utterances} for r in read_manifest(root, s)}
    records = [{"path": f"{u.split}/{u.id}.flac", **asdict(u)} for u in utterances]
    todo = [u for u, r in zip(utterances, records)
            if not (root / r["path"]).exists() or saved.get(u.id, r) != r]  # fmt: skip
    for program in {u.synthesizer for u in todo}:  # a built corpus needs no synthesizer
        require(program)
    voices = {u.voice for u in todo if u.synthesizer == "festival"}
    if voices:
        require_festival_voices(voices)

    def render(batch: list[Utterance]) -> int:
        for utt, wave in zip(batch, synthesize_many(batch)):
            path = root / utt.split / f"{utt.id}.flac"
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                soundfile.write(tmp, wave, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        return len(batch)

    # One task per espeak-ng or flite utterance; festival's, by voice, FESTIVAL_BATCH at a time.
    festival = sorted((u for u in todo if u.synthesizer == "festival"),
                      key=lambda u: (u.voice, u.id))  # fmt: skip
    batches = [[u] for u in todo if u.synthesizer != "festival"] + [
        festival[i : i + FESTIVAL_BATCH] for i in range(0, len(festival), FESTIVAL_BATCH)
    ]
    if todo:
        logger.info("synthesizing %d utterances into %s", len(todo), root)
        say = report or (lambda line: None)
        say(f"synthesizing {len(todo):,} utterances into {root} (cached: later runs reuse them)")
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="utt", disable=not progress, desc="synthesizing")
        finished, tenth = 0, max(1, len(todo) // 10)
        # Threads suffice: the work happens in the synthesizer processes and in NumPy/torch.
        # Ctrl-C or kill cancels the utterances not started (map_in_threads); files are atomic.
        for done in map_in_threads(render, batches, workers or os.cpu_count() or 1):
            bar.update(done)
            finished += done
            crossed = finished // tenth > (finished - done) // tenth  # another tenth done
            if crossed and not progress and finished < len(todo):
                say(f"synthesized {finished:,} of {len(todo):,} utterances")
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
