"""Tests of rnnkit.search against exhaustive enumeration, hand-made tables and chi-square tests."""

import itertools
import math
import re
import zlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.search import Decoder, Hypothesis, beam_search, greedy, sample

EOS, BOS = 0, 1


class ToyDecoder:
    """Log-probs drawn from a seeded random table keyed by (input key, prefix).

    The state is a list of (key, prefix) pairs, one per row, where the prefix holds every token fed
    so far (bos first). The decoder records each prefix it is stepped with, so tests can check
    that no hypothesis is extended after eos.
    """

    def __init__(self, vocab=4, *, seed=0, eos_bias=0.0, scale=2.0):
        self.vocab, self.seed, self.eos_bias, self.scale = vocab, seed, eos_bias, scale
        self.cache = {}
        self.calls = 0
        self.rows = []  # rows per step call
        self.stepped = []  # every prefix fed

    def start(self, keys):
        return [(key, ()) for key in keys]

    def dist(self, key, prefix):
        if (key, prefix) not in self.cache:
            seed = zlib.crc32(repr((self.seed, key, prefix)).encode())
            g = torch.Generator().manual_seed(seed)
            logits = torch.randn(self.vocab, generator=g, dtype=torch.float64) * self.scale
            logits[EOS] += self.eos_bias
            self.cache[key, prefix] = torch.log_softmax(logits, dim=0)
        return self.cache[key, prefix]

    def step(self, tokens, state):
        self.calls += 1
        self.rows.append(len(state))
        state = [
            (key, prefix + (tok,))
            for (key, prefix), tok in zip(state, tokens.tolist(), strict=True)
        ]
        self.stepped.extend(prefix for _key, prefix in state)
        return torch.stack([self.dist(key, prefix) for key, prefix in state]), state

    def reorder(self, state, index):
        return [state[i] for i in index.tolist()]


class TableDecoder(ToyDecoder):
    """Probabilities given by hand for some generated prefixes, a default for all others."""

    def __init__(self, table, default):
        super().__init__(vocab=len(default))
        self.table, self.default = table, default

    def dist(self, key, prefix):
        return torch.tensor(self.table.get(prefix[1:], self.default), dtype=torch.float64).log()


class LSTMDecoder(torch.nn.Module):
    """A tiny real decoder with a tensor state (h, c), as a language model implements it."""

    def __init__(self, vocab=7, hidden=8):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, hidden)
        self.lstm = torch.nn.LSTM(hidden, hidden)
        self.out = torch.nn.Linear(hidden, vocab)

    def step(self, tokens, state):
        output, state = self.lstm(self.embed(tokens)[None], state)  # (1, N, H)
        return torch.log_softmax(self.out(output[0]), dim=-1), state

    def reorder(self, state, index):
        return tuple(s.index_select(1, index) for s in state)


def penalty(name, n, alpha):
    return {"none": 1.0, "average": max(n, 1), "gnmt": ((5 + n) / 6) ** alpha}[name]


def enumerate_all(
    decoder, key, max_length, *, min_length=0, length_penalty="none", alpha=0.6, ngram=0
):
    """Every complete sequence with its log-prob and score, best first (the exhaustive oracle)."""
    found = []

    def extend(prefix, log_prob):
        if len(prefix) == max_length:
            found.append((prefix, log_prob))
            return
        dist = decoder.dist(key, (BOS, *prefix)).tolist()
        for tok, lp in enumerate(dist):
            if tok == EOS:
                if len(prefix) >= min_length:
                    found.append((prefix, log_prob + lp))
            elif not repeats_ngram(prefix + (tok,), ngram):
                extend(prefix + (tok,), log_prob + lp)

    extend((), 0.0)
    scored = [(list(p), lp, lp / penalty(length_penalty, len(p), alpha)) for p, lp in found]
    return sorted(scored, key=lambda s: -s[2])


def repeats_ngram(tokens, n):
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)] if n else []
    return len(grams) != len(set(grams))


def bos_for(n):
    return torch.full((n,), BOS, dtype=torch.long)


def test_toy_decoders_follow_the_protocol():
    assert isinstance(ToyDecoder(), Decoder)
    assert isinstance(LSTMDecoder(), Decoder)


# ---------------------------------------------------------------------------------------------
# Beam search


def test_beam_size_one_equals_greedy():
    dec = ToyDecoder(vocab=6, eos_bias=0.5)
    keys = range(8)
    beams = beam_search(dec, dec.start(keys), bos_for(8), EOS, 1, 12)
    greedies = greedy(dec, dec.start(keys), bos_for(8), EOS, 12)
    assert [b[0] for b in beams] == greedies
    assert len({len(g.tokens) for g in greedies}) > 1  # inputs end at different steps


@pytest.mark.parametrize("length_penalty", ["none", "average", "gnmt"])
@pytest.mark.parametrize("min_length,ngram", [(0, 0), (2, 0), (0, 1)])
def test_wide_beam_equals_exhaustive_enumeration(length_penalty, min_length, ngram):
    vocab, max_length, n_best = 4, 4, 10
    beam_size = vocab * (vocab - 1) ** (max_length - 1)  # holds every candidate at every step
    dec = ToyDecoder(vocab=vocab, seed=3)
    keys = [0, 1, 2]
    results = beam_search(
        dec, dec.start(keys), bos_for(3), EOS, beam_size, max_length,
        min_length=min_length, length_penalty=length_penalty, n_best=n_best,
        no_repeat_ngram_size=ngram,
    )  # fmt: skip
    for key, hyps in zip(keys, results):
        best = enumerate_all(
            dec, key, max_length, min_length=min_length, length_penalty=length_penalty, ngram=ngram
        )[:n_best]
        assert [h.tokens for h in hyps] == [tokens for tokens, _, _ in best]
        assert [h.log_prob for h in hyps] == pytest.approx([lp for _, lp, _ in best], abs=1e-12)
        assert [h.score for h in hyps] == pytest.approx([s for _, _, s in best], abs=1e-12)


@pytest.mark.parametrize("length_penalty", ["none", "gnmt"])
def test_early_stop_gives_the_exhaustive_result(length_penalty):
    vocab, max_length = 3, 8
    beam_size = vocab * (vocab - 1) ** (max_length - 1)
    dec = ToyDecoder(vocab=vocab, seed=5, eos_bias=2.0)
    results = beam_search(
        dec, dec.start(range(4)), bos_for(4), EOS, beam_size, max_length,
        n_best=2, length_penalty=length_penalty,
    )  # fmt: skip
    assert dec.calls < max_length  # every input stopped before max_length
    for key, hyps in enumerate(results):
        best = enumerate_all(dec, key, max_length, length_penalty=length_penalty)[:2]
        assert [h.tokens for h in hyps] == [tokens for tokens, _, _ in best]
        assert [h.score for h in hyps] == pytest.approx([s for _, _, s in best], abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    vocab=st.integers(2, 4),
    max_length=st.integers(1, 4),
    min_length=st.integers(0, 4),
    n_best=st.integers(1, 6),
    length_penalty=st.sampled_from(["none", "average", "gnmt"]),
    alpha=st.floats(-1.0, 2.0),
    eos_bias=st.floats(-2.0, 3.0),
    seed=st.integers(0, 10**6),
)
def test_wide_beam_equals_exhaustive_enumeration_on_random_models(
    vocab, max_length, min_length, n_best, length_penalty, alpha, eos_bias, seed
):
    # The early stop must be sound for any model, penalty and alpha (even alpha < 0).
    min_length = min(min_length, max_length)
    beam_size = max(vocab * (vocab - 1) ** (max_length - 1), n_best)
    dec = ToyDecoder(vocab=vocab, seed=seed, eos_bias=eos_bias)
    [hyps] = beam_search(
        dec, dec.start([0]), BOS, EOS, beam_size, max_length, min_length=min_length,
        length_penalty=length_penalty, alpha=alpha, n_best=n_best,
    )  # fmt: skip
    best = enumerate_all(
        dec, 0, max_length, min_length=min_length, length_penalty=length_penalty, alpha=alpha
    )[:n_best]
    assert [h.score for h in hyps] == pytest.approx([s for _, _, s in best], abs=1e-12)
    assert [h.tokens for h in hyps] == [tokens for tokens, _, _ in best]


@pytest.mark.parametrize("length_penalty", ["none", "average", "gnmt"])
def test_batch_invariance(length_penalty):
    dec = ToyDecoder(vocab=6, seed=1, eos_bias=0.8)
    keys = list(range(6))
    kwargs = dict(n_best=2, length_penalty=length_penalty)
    together = beam_search(dec, dec.start(keys), bos_for(6), EOS, 3, 15, **kwargs)
    rows = list(dec.rows)  # rows per step of the batched search
    for key, hyps in zip(keys, together):
        assert beam_search(dec, dec.start([key]), BOS, EOS, 3, 15, **kwargs) == [hyps]
    assert len({len(hyps[0].tokens) for hyps in together}) > 1  # inputs of different lengths
    assert rows[-1] < max(rows)  # finished inputs left the decoder's batch


def test_batch_invariance_with_a_tensor_state():
    torch.manual_seed(0)
    dec = LSTMDecoder().double()
    batch = 5
    state = (torch.randn(1, batch, 8, dtype=torch.float64),) * 2
    with torch.no_grad():
        together = beam_search(dec, state, bos_for(batch), EOS, 4, 10, n_best=3)
        for b in range(batch):
            [alone] = beam_search(
                dec, dec.reorder(state, torch.tensor([b])), BOS, EOS, 4, 10, n_best=3
            )
            assert [h.tokens for h in alone] == [h.tokens for h in together[b]]
            assert [h.score for h in alone] == pytest.approx([h.score for h in together[b]])


@pytest.mark.parametrize("length_penalty", ["none", "average", "gnmt"])
@pytest.mark.parametrize("beam_size", [1, 3, 8])
def test_finished_hypotheses_are_never_extended(length_penalty, beam_size):
    dec = ToyDecoder(vocab=5, seed=2, eos_bias=1.0)
    results = beam_search(
        dec, dec.start(range(4)), bos_for(4), EOS, beam_size, 10,
        length_penalty=length_penalty, n_best=beam_size,
    )  # fmt: skip
    assert all(EOS not in prefix[1:] for prefix in dec.stepped)
    assert any(h.tokens for hyps in results for h in hyps)
    assert all(EOS not in h.tokens for hyps in results for h in hyps)


# Tokens: 0 eos, 1 "a", 2 "b", 3 "c". Unlisted prefixes end almost surely.
STOP_TABLE = {
    (): [0.5, 0.4, 0.1, 0.0],
    (1,): [0.0, 0.005, 0.005, 0.99],
    (1, 3): [0.99, 0.005, 0.005, 0.0],
}
STOP_DEFAULT = [0.97, 0.01, 0.01, 0.01]


def test_search_stops_once_no_live_hypothesis_can_win():
    dec = TableDecoder(STOP_TABLE, STOP_DEFAULT)
    [[best]] = beam_search(dec, dec.start([0]), BOS, EOS, 2, 10)
    # After one step, "eos" (log 0.5) beats both live hypotheses "a" (log 0.4) and "b" (log 0.1),
    # which can only lose probability: the search stops there.
    assert best == Hypothesis([], math.log(0.5), math.log(0.5))
    assert dec.calls == 1


def test_search_goes_on_while_a_live_hypothesis_can_win():
    dec = TableDecoder(STOP_TABLE, STOP_DEFAULT)
    [[best]] = beam_search(dec, dec.start([0]), BOS, EOS, 2, 10, length_penalty="average")
    # Per token, "a c" (log(0.4 * 0.99 * 0.99) / 2) beats "" (log 0.5 / 1), found only after
    # "" finished: the average penalty's bound must keep the search going, then stop it early.
    assert best.tokens == [1, 3]
    assert best.score == pytest.approx(math.log(0.4 * 0.99 * 0.99) / 2)
    assert 3 <= dec.calls < 10


@pytest.mark.parametrize("alpha, tokens", [(0.0, []), (0.6, []), (1.0, [1, 3])])
def test_gnmt_penalty_ranks_longer_hypotheses_higher_as_alpha_grows(alpha, tokens):
    dec = TableDecoder(STOP_TABLE, STOP_DEFAULT)
    [[best]] = beam_search(dec, dec.start([0]), BOS, EOS, 2, 10, length_penalty="gnmt", alpha=alpha)
    # "" scores log 0.5 / (5/6)^alpha, "a c" log(0.4 * 0.99^2) / (7/6)^alpha: the order flips
    # between alpha 0.6 (-0.773 vs -0.853) and 1 (-0.832 vs -0.802).
    log_prob = math.log(0.5) if not tokens else math.log(0.4 * 0.99 * 0.99)
    assert best.tokens == tokens
    assert best.score == pytest.approx(log_prob / ((5 + len(tokens)) / 6) ** alpha)


def test_gnmt_penalty_with_alpha_zero_is_no_penalty():
    dec = ToyDecoder(vocab=6, seed=5, eos_bias=0.5)
    kwargs = dict(n_best=3)
    plain = beam_search(dec, dec.start(range(6)), bos_for(6), EOS, 4, 9, **kwargs)
    gnmt = beam_search(
        dec, dec.start(range(6)), bos_for(6), EOS, 4, 9, length_penalty="gnmt", alpha=0.0,
        **kwargs,
    )  # fmt: skip
    assert gnmt == plain
    assert len({len(h.tokens) for hyps in plain for h in hyps}) > 1  # lengths differ


def test_search_without_eos_runs_to_max_length():
    dec = ToyDecoder(vocab=5)
    results = beam_search(dec, dec.start(range(3)), bos_for(3), None, 3, 7, n_best=3)
    assert dec.calls == 7
    assert all(len(h.tokens) == 7 for hyps in results for h in hyps)
    assert all(len(hyps) == 3 for hyps in results)


def shortest(search, min_length):
    """Length of the shortest hypothesis of 5 inputs decoded from an eos-loving model."""
    dec, bos = ToyDecoder(vocab=5, seed=4, eos_bias=3.0), bos_for(5)
    state, kwargs = dec.start(range(5)), {"min_length": min_length}
    if search == "beam":
        hyps = [h for b in beam_search(dec, state, bos, EOS, 4, 12, n_best=4, **kwargs) for h in b]
    elif search == "greedy":
        hyps = greedy(dec, state, bos, EOS, 12, **kwargs)
    else:
        hyps = sample(
            dec, state, bos, EOS, 12, generator=torch.Generator().manual_seed(0), **kwargs
        )
    return min(len(h.tokens) for h in hyps)


@pytest.mark.parametrize("search", ["beam", "greedy", "sample"])
def test_min_length_blocks_eos(search):
    assert shortest(search, 0) < 3  # eos is likely early
    assert shortest(search, 3) >= 3


@pytest.mark.parametrize("n", [1, 2, 3])
def test_no_repeat_ngram_blocks_repeats(n):
    # Token 2 is by far the most likely everywhere: without the block, beams repeat it.
    dec = TableDecoder({}, [0.01, 0.05, 0.8, 0.04, 0.05, 0.05])
    free = beam_search(dec, dec.start([0]), BOS, EOS, 3, 8, n_best=3)
    assert all(repeats_ngram(h.tokens, n) for h in free[0])
    blocked = beam_search(dec, dec.start([0]), BOS, EOS, 3, 8, n_best=3, no_repeat_ngram_size=n)
    assert blocked[0] and all(not repeats_ngram(h.tokens, n) for h in blocked[0])


# ---------------------------------------------------------------------------------------------
# Greedy search and sampling


def test_greedy_takes_the_most_likely_token_and_streams_it():
    dec = ToyDecoder(vocab=6, eos_bias=0.5)
    streamed = []
    results = greedy(dec, dec.start(range(4)), bos_for(4), EOS, 9, on_token=streamed.append)
    for b, hyp in enumerate(results):
        prefix, log_prob = (BOS,), 0.0
        for tok in hyp.tokens + ([EOS] if len(hyp.tokens) < 9 else []):
            dist = dec.dist(b, prefix)
            assert tok == int(dist.argmax())
            prefix, log_prob = prefix + (tok,), log_prob + float(dist[tok])
        assert hyp.log_prob == pytest.approx(log_prob) and hyp.score == hyp.log_prob
        column = [int(step[b]) for step in streamed]
        assert column[: len(hyp.tokens)] == hyp.tokens
        assert all(tok == EOS for tok in column[len(hyp.tokens) :])
    assert all(EOS not in prefix[1:] for prefix in dec.stepped)


def test_greedy_without_eos_runs_to_max_length():
    dec = ToyDecoder(vocab=5, eos_bias=5.0)
    results = greedy(dec, dec.start(range(2)), bos_for(2), None, 6)
    assert [len(h.tokens) for h in results] == [6, 6]


@pytest.mark.parametrize("kwargs", [{"temperature": 0.0}, {"temperature": 1e-4}, {"top_k": 1}])
def test_sampling_limits_equal_greedy(kwargs):
    dec = ToyDecoder(vocab=6, eos_bias=0.5)
    expected = greedy(dec, dec.start(range(6)), bos_for(6), EOS, 10)
    got = sample(dec, dec.start(range(6)), bos_for(6), EOS, 10, **kwargs)
    assert got == expected


def draw_once(probs, n, **kwargs):
    """Sample one token for each of n identical inputs from a fixed distribution."""
    dec = TableDecoder({}, probs)
    hyps = sample(dec, dec.start([0] * n), bos_for(n), None, 1, **kwargs)
    return torch.tensor([h.tokens[0] for h in hyps])


def chi_square(counts, probs):
    expected = torch.tensor(probs, dtype=torch.float64) * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


@pytest.mark.parametrize(
    "top_p,kept", [(0.45, {1}), (0.75, {1, 2}), (0.85, {1, 2, 3}), (1.0, {0, 1, 2, 3})]
)
def test_top_p_keeps_the_smallest_set_reaching_p(top_p, kept):
    probs = [0.05, 0.5, 0.3, 0.15]
    tokens = draw_once(probs, 4000, top_p=top_p, generator=torch.Generator().manual_seed(0))
    assert set(tokens.tolist()) == kept
    kept_probs = [probs[t] / sum(probs[k] for k in kept) for t in sorted(kept)]
    counts = torch.bincount(tokens, minlength=4)[sorted(kept)].double()
    assert chi_square(counts, kept_probs) < 16.27  # chi-square, 3 degrees of freedom, p = 0.001


def test_fixed_generator_reproduces_samples():
    dec = ToyDecoder(vocab=6)

    def run(seed):
        gen = torch.Generator().manual_seed(seed)
        return sample(dec, dec.start(range(8)), bos_for(8), EOS, 10, generator=gen, top_p=0.9)

    assert run(5) == run(5)
    assert run(5) != run(6)


@pytest.mark.parametrize("temperature,top_k", [(1.0, None), (2.0, None), (0.7, 3)])
def test_sampled_sequences_follow_the_model(temperature, top_k):
    # Two-token sequences of 20,000 inputs: the frequencies of the 25 sequences must match
    # p(a) p(b | a) of the reshaped model (chi-square, 24 degrees of freedom, p = 0.001).
    vocab, n = 5, 20000
    dec = ToyDecoder(vocab=vocab, seed=7, scale=1.0)
    gen = torch.Generator().manual_seed(0)
    hyps = sample(
        dec, dec.start([0] * n), bos_for(n), None, 2,
        temperature=temperature, top_k=top_k, generator=gen,
    )  # fmt: skip

    def reshaped(prefix):
        logits = dec.dist(0, prefix) / temperature
        if top_k is not None:
            logits[logits < logits.topk(top_k).values[-1]] = -math.inf
        return torch.softmax(logits, dim=0)

    cells = [(a, b) for a, b in itertools.product(range(vocab), repeat=2)]
    probs = [float(reshaped((BOS,))[a] * reshaped((BOS, a))[b]) for a, b in cells]
    seen = torch.tensor([tuple(h.tokens) for h in hyps])
    counts = torch.bincount(seen[:, 0] * vocab + seen[:, 1], minlength=vocab**2).double()
    support = [i for i, p in enumerate(probs) if p > 0]
    assert counts.sum() == counts[support].sum()  # nothing outside the reshaped support
    assert (
        chi_square(counts[support], [probs[i] for i in support])
        < {25: 51.18, 9: 27.88}[len(support)]
    )
    first = dec.dist(0, (BOS,))
    for h in hyps[:20]:  # log_prob is under the model itself, before reshaping
        expected = first[h.tokens[0]] + dec.dist(0, (BOS, h.tokens[0]))[h.tokens[1]]
        assert h.log_prob == pytest.approx(float(expected))


# ---------------------------------------------------------------------------------------------
# Bad arguments


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda d, s: beam_search(d, s, BOS, EOS, 0, 5), "beam_size"),
        (lambda d, s: beam_search(d, s, BOS, EOS, 2, 5, n_best=3), "n_best"),
        (lambda d, s: beam_search(d, s, BOS, EOS, 2, 5, length_penalty="gnu"), "length_penalty"),
        (lambda d, s: beam_search(d, s, BOS, EOS, 2, 5, no_repeat_ngram_size=-1), "no_repeat"),
        (lambda d, s: beam_search(d, s, BOS, EOS, 2, 3, min_length=4), "max_length=3"),
        (lambda d, s: greedy(d, s, BOS, EOS, 3, min_length=4), "min_length=4"),
        (lambda d, s: greedy(d, s, BOS, EOS, 0), "max_length"),
        (lambda d, s: sample(d, s, BOS, EOS, 5, top_p=0.0), "top_p"),
        (lambda d, s: sample(d, s, BOS, EOS, 5, top_p=1.5), "top_p"),
        (lambda d, s: sample(d, s, BOS, EOS, 5, temperature=-1.0), "temperature"),
        (lambda d, s: sample(d, s, BOS, EOS, 5, top_k=0), "top_k"),
        (lambda d, s: greedy(d, s, torch.tensor([[BOS]]), EOS, 5), "bos"),
        (lambda d, s: greedy(BroadcastingDecoder(), d.start([0, 1]), BOS, EOS, 5), "shape"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, message):
    dec = ToyDecoder()
    with pytest.raises(ValueError, match=message):
        call(dec, dec.start([0]))


class BroadcastingDecoder(ToyDecoder):
    """Returns one row per state row, whatever the number of tokens (a bos/state mismatch)."""

    def step(self, tokens, state):
        return torch.zeros(len(state), self.vocab), state


def test_bos_of_wrong_type_is_a_type_error():
    dec = ToyDecoder()
    with pytest.raises(TypeError, match="bos"):
        greedy(dec, dec.start([0]), "<s>", EOS, 5)


# ------------------------------------------------------------------ options, decode, processors


def test_decode_follows_its_options_to_the_right_search():
    from rnnkit.search import SearchOptions, decode

    dec = ToyDecoder(vocab=5, eos_bias=1.0)
    state = dec.start(range(3))
    assert decode(dec, state, bos_for(3), EOS, 6) == [
        [h] for h in greedy(dec, state, bos_for(3), EOS, 6)
    ]
    options = SearchOptions(beam_size=3, n_best=2, length_penalty="gnmt", min_length=1)
    expected = beam_search(
        dec, state, bos_for(3), EOS, 3, 6, n_best=2, length_penalty="gnmt", min_length=1
    )
    assert decode(dec, state, bos_for(3), EOS, 6, options) == expected
    drawn = decode(dec, state, bos_for(3), EOS, 6, SearchOptions(sample=True, top_k=2, seed=4))
    generator = torch.Generator().manual_seed(4)
    plain = sample(dec, state, bos_for(3), EOS, 6, top_k=2, generator=generator)
    assert drawn == [[h] for h in plain]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"beam_size": 0}, "beam size must be from 1 to 100,000"),
        ({"beam_size": 2, "n_best": 3}, "n-best must be between 1 and the beam size 2"),
        ({"length_penalty": "long"}, "length penalty must be one of none, average, gnmt"),
        ({"temperature": float("inf")}, "temperature must be a finite number >= 0"),
        ({"top_p": 0.0}, "top-p must be in (0, 1]"),
        ({"top_k": 0}, "top-k must be a positive integer"),
    ],
)
def test_search_options_refuse_bad_values_as_config_errors(options, message):
    from rnnkit.errors import ConfigError
    from rnnkit.search import SearchOptions

    with pytest.raises(ConfigError, match=re.escape(message)):
        SearchOptions(**options)


def test_ban_tokens_removes_them_and_renormalises():
    from rnnkit.search import ban_tokens

    dec = ToyDecoder(vocab=6)
    state = dec.start(range(4))
    log_probs, _ = dec.step(bos_for(4), state)
    banned = ban_tokens([2, 4])(log_probs, None, 0)
    assert torch.isinf(banned[:, [2, 4]]).all()
    torch.testing.assert_close(banned.exp().sum(1), torch.ones(4, dtype=banned.dtype))
    kept = [0, 1, 3, 5]
    expected = log_probs[:, kept] - log_probs[:, kept].logsumexp(1, keepdim=True)
    torch.testing.assert_close(banned[:, kept], expected)


@pytest.mark.parametrize("method", ["greedy", "sample", "beam"])
def test_banned_tokens_never_appear_in_any_search(method):
    from rnnkit.search import SearchOptions, ban_tokens, decode

    dec = ToyDecoder(vocab=5, scale=0.5)
    options = {
        "greedy": SearchOptions(),
        "sample": SearchOptions(sample=True, seed=0),
        "beam": SearchOptions(beam_size=3, n_best=3),
    }[method]
    found = decode(dec, dec.start(range(6)), bos_for(6), None, 8, options,
                   processors=[ban_tokens([3])])  # fmt: skip
    tokens = [t for row in found for h in row for t in h.tokens]
    assert len(tokens) >= 6 * 8 and 3 not in tokens


def test_no_repeat_ngram_processor_works_in_greedy_search_too():
    from rnnkit.search import no_repeat_ngram

    dec = TableDecoder({}, [0.04, 0.05, 0.85, 0.06])  # always prefers 2, then 3, 1, eos
    plain = greedy(dec, dec.start([0]), BOS, EOS, 6)[0].tokens
    assert plain == [2] * 6
    blocked = greedy(dec, dec.start([0]), BOS, EOS, 6, processors=[no_repeat_ngram(2)])[0]
    # (2, 2) then 3; 2; (2, 2) and (2, 3) seen, so 1; 2: the best tokens that repeat no bigram
    assert blocked.tokens == [2, 2, 3, 2, 1, 2]
