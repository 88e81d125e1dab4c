import pytest
import torch

from rnnkit.lm.model import LMConfig, RNNLanguageModel


def model(cell="lstm", **kw):
    torch.manual_seed(0)
    config = dict(vocab_size=11, cell=cell, embedding_dim=6, hidden_size=8, num_layers=2)
    return RNNLanguageModel(LMConfig(**{**config, **kw})).eval()


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "mingru", "minlstm"])
def test_carried_state_continues_the_sequence(cell):
    m = model(cell)
    tokens = torch.randint(0, 11, (12, 3))
    whole, _ = m(tokens)
    first, state = m(tokens[:5])
    second, _ = m(tokens[5:], state)
    assert whole.shape == (12, 3, 11)
    torch.testing.assert_close(torch.cat([first, second]), whole)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "mingru", "minlstm"])
def test_step_gives_normalised_log_probs_of_the_next_token(cell):
    m = model(cell)
    tokens = torch.randint(0, 11, (7, 2))
    logits, _ = m(tokens)
    state = m.prime(tokens[:-1])
    log_probs, _ = m.step(tokens[-1], state)
    torch.testing.assert_close(log_probs, torch.log_softmax(logits[-1], dim=-1))
    torch.testing.assert_close(log_probs.exp().sum(1), torch.ones(2))


def test_reorder_selects_and_repeats_sequences():
    m = model("lstm")
    state = m.prime(torch.randint(0, 11, (4, 3)))
    index = torch.tensor([2, 2, 0])
    h, c = m.reorder(state, index)
    assert torch.equal(h, state[0][:, index]) and torch.equal(c, state[1][:, index])
    g = model("gru")
    gstate = g.prime(torch.randint(0, 11, (4, 3)))
    assert torch.equal(g.reorder(gstate, index), gstate[:, index])
    assert m.reorder(None, index) is None


def test_weight_tying_shares_the_embedding_matrix():
    tied = model(tie_weights=True, embedding_dim=8)
    assert tied.decoder.weight is tied.embedding.weight
    assert tied.projection is None
    untied = model(embedding_dim=8)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(untied) - count(tied) == 11 * 8
    projected = model(tie_weights=True, embedding_dim=6)  # hidden 8 != embedding 6
    assert projected.projection.weight.shape == (6, 8)
    assert projected(torch.zeros(2, 1, dtype=torch.long))[0].shape == (2, 1, 11)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"cell": "tcn"}, "cell"), ({"hidden_size": 0}, "hidden_size"), ({"dropout": 1.0}, "dropout")],
)
def test_bad_config_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LMConfig(vocab_size=5, **kwargs)


def test_forward_wants_time_by_batch():
    with pytest.raises(ValueError, match=r"\(T, B\)"):
        model()(torch.zeros(5, dtype=torch.long))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_rnnkit_kernels_match_torch_fused_operator(cell):
    ours = model(cell, impl="rnnkit").train()
    fused = model(cell, impl="torch").train()
    fused.load_state_dict(ours.state_dict())
    tokens, targets = torch.randint(0, 11, (2, 9, 4))
    loss_ours, _ = ours.loss(tokens, targets)
    loss_fused, _ = fused.loss(tokens, targets)
    loss_ours.backward()
    loss_fused.backward()
    torch.testing.assert_close(loss_ours, loss_fused)
    for (name, a), b in zip(ours.named_parameters(), fused.parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=name)


def test_model_uses_rnnkit_layers():
    import rnnkit.nn

    assert isinstance(model("gru").rnn, rnnkit.nn.GRU)
    with pytest.raises(ValueError, match="impl"):
        LMConfig(vocab_size=5, impl="cudnn")
