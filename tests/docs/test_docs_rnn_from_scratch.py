"""The worked example in docs/rnn-from-scratch.md runs and its assertions hold."""

import re
from pathlib import Path

import torch

DOC = Path(__file__).resolve().parents[2] / "docs" / "rnn-from-scratch.md"


def test_worked_example_runs_and_matches_the_layer():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 4
    namespace: dict = {}
    exec(compile("\n".join(blocks), str(DOC), "exec"), namespace)  # the doc's own asserts run
    # The hand loop and the layer agree, and the loop really carried the state.
    torch.testing.assert_close(namespace["layer_output"], namespace["output"])
    x, h0, step = namespace["x"].detach(), namespace["h0"], namespace["rnn_step"]
    torch.testing.assert_close(namespace["output"][1], step(x[1], step(x[0], h0)))
