"""The C word2vec loops: they build where a compiler exists, equal the PyTorch steps, fall back."""

import shutil

import numpy as np
import pytest
import torch

from rnnkit.embeddings import Word2VecConfig, native, train_word_vectors
from rnnkit.embeddings import train as train_module
from rnnkit.errors import RnnkitError

HAS_COMPILER = shutil.which("cc") is not None


def tiny_problem(model, seed=0):
    """A trainer on 10 words and a 40-token corpus of three sentences, with fixed draws.

    Returns ``(trainer, seq, owner, width, negatives)``. Some negatives are the centre word
    (which both loops skip); no centre repeats a negative, the one case where word2vec's
    one-at-a-time CBOW update and a batched step differ (by a term of order lr^2).
    """
    g = torch.Generator().manual_seed(seed)
    vocab, k, window = 10, 3, 3
    config = Word2VecConfig(model=model, dim=8, window=window, negative=k, impl="torch")
    trainer = train_module._Trainer(config, np.arange(vocab, 0, -1))
    trainer.w_in = torch.randn(vocab, 8, generator=g)
    trainer.w_out = torch.randn(vocab, 8, generator=g)
    seq = torch.randint(vocab, (40,), generator=g)
    owner = torch.tensor([0] * 17 + [1] + [2] * 22)  # sentence 1 has a single word: no context
    width = torch.randint(1, window + 1, (40,), generator=g)
    negatives = torch.stack([torch.randperm(vocab, generator=g)[:k] for _ in range(40)])
    negatives[::4, 0] = seq[::4]  # the centre word drawn as a negative
    return trainer, seq, owner, width, negatives


@pytest.mark.skipif(not HAS_COMPILER, reason="needs a C compiler")
@pytest.mark.parametrize("model", ["sgns", "cbow"])
def test_c_chunk_equals_pytorch_steps_one_centre_at_a_time(model):
    trainer, seq, owner, width, negatives = tiny_problem(model)
    w_in, w_out = trainer.w_in.clone(), trainer.w_out.clone()
    lr = 0.1
    for i in range(len(seq)):  # the PyTorch steps, one centre word each, in corpus order
        trainer.torch_chunk(seq, owner, i, i + 1, width[i : i + 1], negatives[i : i + 1], lr)
    native.train_chunk(
        model, w_in, w_out, seq, owner, 0, len(seq), width, negatives, window=3, lr=lr
    )  # one C call for the whole corpus
    assert (w_in - trainer.w_in).abs().max() < 1e-6
    assert (w_out - trainer.w_out).abs().max() < 1e-6
    fresh, *_ = tiny_problem(model)
    assert (w_in - fresh.w_in).abs().max() > 0.05  # the test moved the weights
    assert (w_out - fresh.w_out).abs().max() > 0.05


@pytest.mark.skipif(not HAS_COMPILER, reason="needs a C compiler")
def test_c_cbow_skips_a_centre_without_context_and_the_centre_as_negative():
    trainer, seq, owner, width, negatives = tiny_problem("cbow")
    w_in, w_out = trainer.w_in.clone(), trainer.w_out.clone()
    # Centre 17 is alone in its sentence: nothing changes.
    native.train_chunk("cbow", w_in, w_out, seq, owner, 17, 18, width[17:18], negatives[17:18],
                       window=3, lr=0.1)  # fmt: skip
    assert torch.equal(w_in, trainer.w_in) and torch.equal(w_out, trainer.w_out)
    # Only negatives equal to the centre: only the centre's output row and the context move.
    centre = int(seq[4])
    same = torch.full((1, 3), centre)
    native.train_chunk("cbow", w_in, w_out, seq, owner, 4, 5, width[4:5], same, window=3, lr=0.1)
    changed = (w_out != trainer.w_out).any(1).nonzero().flatten().tolist()
    assert changed == [centre]


def test_build_failure_falls_back_to_pytorch(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert native._library.__wrapped__() is None  # logged, not raised
    monkeypatch.setattr(native, "_library", lambda: None)
    assert not native.available()
    assert train_module.use_native("auto") is False
    with pytest.raises(RnnkitError, match="impl='native'.*use impl='auto' or 'torch'"):
        train_module.use_native("native")

    calls = []
    original = train_module._Trainer.torch_chunk

    def record(self, *args):
        calls.append(args[2:4])
        return original(self, *args)

    monkeypatch.setattr(train_module._Trainer, "torch_chunk", record)
    sentences = [["a", "b", "c", "a", "b"]] * 20
    vectors = train_word_vectors(sentences, Word2VecConfig(model="cbow", dim=4, min_count=1))
    assert calls and np.isfinite(vectors.vectors).all()


@pytest.mark.parametrize("impl", ["torch", "native"])
def test_impl_chooses_the_loops(impl, monkeypatch):
    if impl == "native" and not HAS_COMPILER:
        pytest.skip("needs a C compiler")
    used = []
    monkeypatch.setattr(native, "train_chunk", lambda *a, **k: used.append("native"))
    monkeypatch.setattr(train_module._Trainer, "torch_chunk", lambda *a: used.append("torch"))
    train_word_vectors([["a", "b"] * 10], Word2VecConfig(dim=4, min_count=1, impl=impl))
    assert used and set(used) == {impl}


def test_c_loops_build_where_a_compiler_exists():
    assert native.available() == HAS_COMPILER
    assert train_module.use_native("auto") == HAS_COMPILER
    assert train_module.use_native("torch") is False


def test_cli_passes_impl(tmp_path, monkeypatch):
    from rnnkit import cli

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a b c a b " * 50, encoding="utf-8")
    seen = []
    real = train_module.train_word_vectors

    def spy(sentences, config, **kw):
        seen.append(config.impl)
        return real(sentences, config, **kw)

    monkeypatch.setattr(train_module, "train_word_vectors", spy)
    argv = ["embed", "train", "--data", str(corpus), "--out", str(tmp_path / "v.txt"), "--dim",
            "4", "--epochs", "1", "--min-count", "1", "--quiet", "--impl", "torch"]  # fmt: skip
    assert cli.main(argv) == 0 and seen == ["torch"]
