"""The examples of docs/decoding.md run, and the constraints they pass hold in the results."""

import re
from pathlib import Path

import torch

DOC = Path(__file__).resolve().parents[2] / "docs" / "decoding.md"


def test_decoding_examples_run_and_respect_their_processors(capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 2
    torch.manual_seed(0)
    namespace: dict = {}
    exec(compile("\n".join(blocks), str(DOC), "exec"), namespace)
    found, unk, eos = namespace["found"], namespace["UNK"], namespace["EOS"]
    assert len(found) == 3 and all(len(row) == 3 for row in found)  # 3 inputs, n_best 3
    for row in found:
        assert [h.score for h in row] == sorted((h.score for h in row), reverse=True)
        for hyp in row:
            bigrams = list(zip(hyp.tokens, hyp.tokens[1:]))
            assert unk not in hyp.tokens and eos not in hyp.tokens
            assert len(bigrams) == len(set(bigrams)) and len(hyp.tokens) >= 3
    assert len(namespace["texts"]) == 3 and len(namespace["beams"][0]) == 3
