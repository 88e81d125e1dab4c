"""The C word2vec loops: they build where a compiler exists, are word2vec's updates, fall back."""

import shutil

import numpy as np
import pytest
import torch

from rnnkit.embed import Word2VecConfig, native, train_word_vectors
from rnnkit.embed import train as train_module
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


def word2vec_skipgram(w_in, w_out, seq, owner, width, negatives, lr):
    """Exact word2vec skip-gram (word2vec.c's loop), one pair at a time, in float32 NumPy.

    For each centre in corpus order, for each context word in its window (corpus order, same
    sentence), that word's input vector predicts the centre word against the pair's own
    negatives ``negatives[i, a]``; the output rows change at once, the input row after the pair.
    """
    w_in, w_out, lr = w_in.copy(), w_out.copy(), np.float32(lr)
    for i, centre in enumerate(seq):
        for a, word in enumerate(context_of(i, seq, owner, width)):
            v = w_in[word]  # a view: updated in place below
            grad = np.zeros_like(v)
            for t, label in labelled_targets(centre, negatives[i, a]):
                g = lr * (label - sigmoid(v @ w_out[t]))
                grad += g * w_out[t]
                w_out[t] += g * v
            v += grad
    return w_in, w_out


def shared_negative_skipgram(w_in, w_out, seq, owner, width, negatives, lr):
    """The PyTorch steps' skip-gram (Ji et al. 2016), one centre at a time, in float32 NumPy.

    A centre's negatives ``negatives[i]`` serve all its context words, and every gradient of the
    window is computed from the weights before the window, then all are applied.
    """
    w_in, w_out, lr = w_in.copy(), w_out.copy(), np.float32(lr)
    for i, centre in enumerate(seq):
        grad_in, grad_out = np.zeros_like(w_in), np.zeros_like(w_out)
        for word in context_of(i, seq, owner, width):
            for t, label in labelled_targets(centre, negatives[i]):
                g = lr * (label - sigmoid(w_in[word] @ w_out[t]))
                grad_in[word] += g * w_out[t]
                grad_out[t] += g * w_in[word]
        w_in += grad_in
        w_out += grad_out
    return w_in, w_out


def context_of(i, seq, owner, width):
    """Centre ``i``'s context words in corpus order: half-width ``width[i]``, same sentence."""
    window = range(max(i - width[i], 0), min(i + width[i], len(seq) - 1) + 1)
    return [seq[j] for j in window if j != i and owner[j] == owner[i]]


def labelled_targets(centre, negatives):
    """The centre word (label 1), then the negatives that are not the centre (label 0)."""
    return [(centre, 1.0)] + [(t, 0.0) for t in negatives if t != centre]


def sigmoid(x):
    return np.float32(1.0 / (1.0 + np.exp(-float(x))))


def test_pytorch_skipgram_steps_share_a_centres_negatives():
    trainer, seq, owner, width, negatives = tiny_problem("sgns")
    w_in, w_out = trainer.w_in.numpy().copy(), trainer.w_out.numpy().copy()
    for i in range(len(seq)):  # one centre word per step, in corpus order
        trainer.torch_chunk(seq, owner, i, i + 1, width[i : i + 1], negatives[i : i + 1], 0.1)
    arrays = (x.numpy() for x in (seq, owner, width, negatives))
    expected = shared_negative_skipgram(w_in, w_out, *arrays, 0.1)
    assert np.abs(trainer.w_in.numpy() - expected[0]).max() < 1e-6
    assert np.abs(trainer.w_out.numpy() - expected[1]).max() < 1e-6
    assert np.abs(trainer.w_in.numpy() - w_in).max() > 0.05  # the weights moved


@pytest.mark.skipif(not HAS_COMPILER, reason="needs a C compiler")
@pytest.mark.parametrize("cuts", [[0, 40], [0, 13, 17, 18, 40]])
def test_c_skipgram_is_exact_word2vec(cuts):
    _, seq, owner, width, _ = tiny_problem("sgns")
    g = torch.Generator().manual_seed(1)
    w_in, w_out = torch.randn(10, 8, generator=g), torch.randn(10, 8, generator=g)
    negatives = torch.randint(10, (40, 6, 3), generator=g)  # (centres, 2 * window, K)
    negatives[::3, :, 1] = seq[::3, None]  # the centre word drawn as a negative (skipped)
    negatives[1::5, :, 2] = negatives[1::5, :, 0]  # a word drawn twice for one pair
    lr = 0.1
    expected = word2vec_skipgram(*(x.numpy() for x in (w_in, w_out, seq, owner, width, negatives)),
                                 lr)  # fmt: skip
    got_in, got_out = w_in.clone(), w_out.clone()
    for start, stop in zip(cuts, cuts[1:]):  # chunks end anywhere, even mid-sentence
        native.train_chunk("sgns", got_in, got_out, seq, owner, start, stop, width[start:stop],
                           negatives[start:stop], window=3, lr=lr)  # fmt: skip
    assert np.abs(got_in.numpy() - expected[0]).max() < 1e-6
    assert np.abs(got_out.numpy() - expected[1]).max() < 1e-6
    assert (got_in - w_in).abs().max() > 0.05 and (got_out - w_out).abs().max() > 0.05  # moved
    # The per-pair negatives matter: sharing the first pair's among a window gives other weights.
    shared = negatives[:, :1].expand(-1, 6, -1).contiguous()
    other_in, _ = word2vec_skipgram(*(x.numpy() for x in (w_in, w_out, seq, owner, width, shared)),
                                    lr)  # fmt: skip
    assert np.abs(other_in - expected[0]).max() > 0.01


@pytest.mark.skipif(not HAS_COMPILER, reason="needs a C compiler")
def test_c_skipgram_wants_negatives_per_pair():
    _, seq, owner, width, negatives = tiny_problem("sgns")
    w = torch.zeros(10, 8)
    with pytest.raises(
        ValueError, match=r"negatives of shape \(40, 6, K\), got \(40,\) and \(40, 3\)"
    ):
        native.train_chunk("sgns", w, w.clone(), seq, owner, 0, 40, width, negatives, window=3,
                           lr=0.1)  # fmt: skip


@pytest.mark.skipif(not HAS_COMPILER, reason="needs a C compiler")
def test_c_cbow_equals_pytorch_steps_one_centre_at_a_time():
    trainer, seq, owner, width, negatives = tiny_problem("cbow")
    w_in, w_out = trainer.w_in.clone(), trainer.w_out.clone()
    lr = 0.1
    for i in range(len(seq)):  # the PyTorch steps, one centre word each, in corpus order
        trainer.torch_chunk(seq, owner, i, i + 1, width[i : i + 1], negatives[i : i + 1], lr)
    native.train_chunk(
        "cbow", w_in, w_out, seq, owner, 0, len(seq), width, negatives, window=3, lr=lr
    )  # one C call for the whole corpus
    assert (w_in - trainer.w_in).abs().max() < 1e-6
    assert (w_out - trainer.w_out).abs().max() < 1e-6
    fresh, *_ = tiny_problem("cbow")
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
