"""Fixtures of the speech tests: a tone corpus and a run trained on it (once per session)."""

import pytest
from speech_tones import TINY, write_tone_corpus

from rnnkit import cli


@pytest.fixture(scope="session")
def tone_tsv(tmp_path_factory):
    return write_tone_corpus(tmp_path_factory.mktemp("tones"))


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tone_tsv):
    """A run trained on the tone corpus through the command line (a few seconds)."""
    out = tmp_path_factory.mktemp("speech") / "run"
    code = cli.main(["speech", "train", "--corpus", str(tone_tsv), "--out", str(out),
                     "--max-steps", "120", "--quiet", "--threads", "1", *TINY])  # fmt: skip
    assert code == 0
    return out
