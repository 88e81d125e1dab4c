import math

import pytest
import torch

from rnnkit.nn.attention import SCORES, Attention


def hand_scores(attention, q, keys):
    """Scores of one query (H_q,) against keys (S, H_k), element by element from the formulas."""
    out = []
    with torch.no_grad():
        for k in keys:
            out.append(hand_score(attention, q, k))
    return out


def hand_score(attention, q, k):
    """The score of query q (H_q,) and key k (H_k,) written out from the formula."""
    if attention.score == "dot":
        return sum(float(q[i] * k[i]) for i in range(len(q)))
    if attention.score == "general":
        W = attention.key_proj.weight  # (H_q, H_k): q^T W k
        return float(q @ W @ k)
    v = attention.v.weight[0]
    if attention.score == "additive":
        W, U = attention.query_proj.weight, attention.key_proj.weight
        return float(v @ torch.tanh(W @ q + U @ k))
    W = attention.concat_proj.weight
    return float(v @ torch.tanh(W @ torch.cat([q, k])))


@pytest.mark.parametrize("score", SCORES)
def test_scores_weights_and_context_match_hand_computation(score):
    torch.manual_seed(0)
    sizes = (4, 4) if score == "dot" else (3, 5)
    attention = Attention(*sizes, score=score, attention_size=6).double()
    query = torch.randn(2, sizes[0], dtype=torch.float64)
    keys = torch.randn(2, 4, sizes[1], dtype=torch.float64)
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    context, weights = attention(query, keys, mask)
    for n in range(2):
        valid = int(mask[n].sum())
        scores = hand_scores(attention, query[n], keys[n, :valid])
        total = sum(math.exp(s) for s in scores)
        expected = [math.exp(s) / total for s in scores] + [0.0] * (4 - valid)
        assert weights[n].tolist() == pytest.approx(expected, abs=1e-12)
        expected_context = sum(expected[s] * keys[n, s] for s in range(valid))
        assert torch.allclose(context[n], expected_context, atol=1e-12)


@pytest.mark.parametrize("score", SCORES)
def test_padding_does_not_change_results(score):
    torch.manual_seed(1)
    attention = Attention(4, 4, score=score)
    query = torch.randn(1, 4)
    keys = torch.randn(1, 3, 4)
    alone, alone_weights = attention(query, keys)
    padded_keys = torch.cat([keys, 100 * torch.randn(1, 5, 4)], dim=1)  # garbage in the padding
    mask = torch.tensor([[True] * 3 + [False] * 5])
    padded, padded_weights = attention(query, padded_keys, mask)
    assert torch.allclose(alone, padded, atol=1e-6)
    assert torch.allclose(alone_weights, padded_weights[:, :3], atol=1e-6)
    assert padded_weights[:, 3:].abs().max() == 0.0


@pytest.mark.parametrize("score", SCORES)
def test_many_queries_at_once_equal_one_at_a_time(score):
    torch.manual_seed(4)
    attention = Attention(4, 4, score=score)
    queries, keys = torch.randn(2, 3, 4), torch.randn(2, 5, 4)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    context, weights = attention(queries, keys, mask)
    for t in range(3):
        one_context, one_weights = attention(queries[:, t], keys, mask)
        assert torch.allclose(context[:, t], one_context, atol=1e-6)
        assert torch.allclose(weights[:, t], one_weights, atol=1e-6)


def test_precomputed_keys_give_the_same_result():
    torch.manual_seed(2)
    for score in ("additive", "general", "concat"):
        attention = Attention(3, 5, score=score)
        query, keys = torch.randn(2, 3), torch.randn(2, 4, 5)
        direct = attention(query, keys)[0]
        cached = attention(query, keys, projected=attention.precompute(keys))[0]
        assert torch.equal(direct, cached)


def test_gradients_match_finite_differences():
    torch.manual_seed(3)
    attention = Attention(3, 3, score="additive").double()
    query = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    keys = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    assert torch.autograd.gradcheck(lambda q, k: attention(q, k, mask)[0], (query, keys))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="score='cosine'"):
        Attention(4, 4, score="cosine")
    with pytest.raises(ValueError, match="dot attention needs query_size == key_size"):
        Attention(4, 8, score="dot")
    with pytest.raises(ValueError, match="expected query"):
        Attention(4, 4)(torch.zeros(2, 4), torch.zeros(3, 5, 4))
