"""The toy application of docs/adding-an-application.md runs as written: trains, resumes, loads,
predicts, evaluates, and its command group works under rnnkit's error policy."""

import argparse
import json
import re
import sys
import types
from pathlib import Path

import pytest

from rnnkit import cli
from rnnkit.errors import RunDirError

DOC = Path(__file__).resolve().parents[2] / "docs" / "adding-an-application.md"


@pytest.fixture(scope="module")
def parity():
    """The doc's code blocks, run in order as one module (one file per block in a real app)."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    rooms = ("recipe", "data", "model", "task", "api", "cli")
    files = [block.splitlines()[0].split(":")[0] for block in blocks]
    assert files == [f"# src/rnnkit/parity/{room}.py" for room in rooms]
    module = types.ModuleType("parity_from_the_docs")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    try:
        exec(compile("\n".join(blocks), str(DOC), "exec"), module.__dict__)
        yield module
    finally:
        del sys.modules[module.__name__]


def brute_force_parity(bits: str) -> str:
    return "".join(str(bits[: i + 1].count("1") % 2) for i in range(len(bits)))


def run_group(parity, capsys, *argv):
    """``rnnkit parity ARGS`` as cli.py would run it once the group is registered."""
    parser = argparse.ArgumentParser(prog="rnnkit parity")
    parity.register(parser)
    args = parser.parse_args([str(a) for a in argv])
    code = cli.run_command(args.func, args)
    out, err = capsys.readouterr()
    return code, out, err


def test_the_toy_application_learns_resumes_and_predicts(parity, tmp_path, capsys):
    out = tmp_path / "run"
    code, text, _ = run_group(parity, capsys, "train", "--out", out, "--max-steps", 150, "--quiet")
    assert code == 0 and text.startswith("done: 150 steps")
    config = json.loads((out / "config.json").read_text())
    assert set(config) == {"recipe", "model", "train"}  # the one schema
    assert config["recipe"]["hidden_size"] == parity.ParityRecipe.hidden_size
    code, text, _ = run_group(parity, capsys, "train", "--resume", out, "--max-steps", 300)
    assert code == 0 and text.startswith("done: 300 steps")
    assert json.loads((out / "config.json").read_text())["train"]["max_steps"] == 300
    assert parity.evaluate(out)["accuracy"] > 0.95
    for bits in ("0110", "10110011"):  # as long as the training sequences at most
        code, text, _ = run_group(parity, capsys, "predict", out, bits)
        assert code == 0 and text.strip() == brute_force_parity(bits)


def test_the_toy_application_gets_the_shared_one_line_errors(parity, tmp_path, capsys):
    code, _, err = run_group(parity, capsys, "predict", tmp_path / "nothing", "01")
    assert code == 2 and err == f"rnnkit: error: no run directory at {tmp_path / 'nothing'}\n"
    out = tmp_path / "run"
    parity.train(out, recipe=parity.ParityRecipe(max_steps=2, eval_every=1))
    code, _, err = run_group(parity, capsys, "predict", out, "012")
    assert code == 2 and "give a string of 0s and 1s" in err and err.count("\n") == 1
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "model": {"hidden": 3}}))
    with pytest.raises(RunDirError, match=r"config.json is damaged \(section 'model'"):
        parity.load(out)
    code, _, err = run_group(parity, capsys, "train", "--out", out, "--max-steps", 2)
    assert code == 2 and "already holds a run" in err
