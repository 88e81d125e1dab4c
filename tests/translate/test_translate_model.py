import pytest
import torch
import torch.nn.functional as F

from rnnkit.translate.model import ATTENTIONS, Seq2Seq, Seq2SeqConfig

PAD, BOS, EOS = 0, 1, 2
SYMBOLS = 6  # token ids 3..8
V = 3 + SYMBOLS


def reversal_batch(n, generator, *, min_len=2, max_len=5):
    """Random symbol sequences and their reversals: (src, lengths, target with BOS ... EOS)."""
    lengths = torch.randint(min_len, max_len + 1, (n,), generator=generator)
    src = torch.full((n, int(lengths.max())), PAD)
    tgt = torch.full((n, int(lengths.max()) + 2), PAD)
    for i, length in enumerate(lengths.tolist()):
        tokens = torch.randint(3, V, (length,), generator=generator)
        src[i, :length] = tokens
        tgt[i, 0], tgt[i, length + 1] = BOS, EOS
        tgt[i, 1 : length + 1] = tokens.flip(0)
    return src, lengths, tgt


def greedy(model, src, lengths, steps):
    """Greedy decoding, collecting tokens, log-probabilities and attention weights per step."""
    state = model.start(src, lengths)
    tokens = torch.full((src.size(0),), BOS)
    out, log_probs, weights = [], [], []
    for _ in range(steps):
        scores, state = model.step(tokens, state)
        tokens = scores.argmax(dim=1)
        out.append(tokens)
        log_probs.append(scores)
        weights.append(state.weights)
    return torch.stack(out, 1), torch.stack(log_probs, 1), weights


def small_model(attention="general", cell="gru", **kwargs):
    kwargs.setdefault("input_feeding", True)  # the longer path; tests opt out where they need
    config = Seq2SeqConfig(
        V,
        V,
        embedding_dim=16,
        hidden_size=32,
        attention=attention,
        cell=cell,
        dropout=0.0,
        **kwargs,
    )
    return Seq2Seq(config)


def test_attention_model_learns_to_reverse_sequences():
    torch.manual_seed(0)
    model = small_model("general")
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    generator = torch.Generator().manual_seed(0)
    for _ in range(250):
        src, lengths, tgt = reversal_batch(64, generator)
        logits = model(src, lengths, tgt[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, V), tgt[:, 1:].reshape(-1), ignore_index=PAD)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    model.eval()
    src, lengths, tgt = reversal_batch(200, torch.Generator().manual_seed(1))
    with torch.no_grad():
        out, _, _ = greedy(model, src, lengths, tgt.size(1) - 1)
    correct = [torch.equal(out[i, : n + 1], tgt[i, 1 : n + 2]) for i, n in enumerate(lengths)]
    assert sum(correct) / len(correct) >= 0.9


@pytest.mark.parametrize("attention", ATTENTIONS)
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_padding_does_not_change_outputs_or_attention(attention, cell):
    torch.manual_seed(2)
    model = small_model(attention, cell, num_layers=2).eval()
    sentence = torch.tensor([[3, 4, 5]])
    longer = torch.tensor([[6, 7, 8, 3, 4, 5, 6], [5, 5, 5, 5, 0, 0, 0], [3, 4, 5, 0, 0, 0, 0]])
    with torch.no_grad():
        alone, alone_lp, alone_w = greedy(model, sentence, torch.tensor([3]), 6)
        batch, batch_lp, batch_w = greedy(model, longer, torch.tensor([7, 4, 3]), 6)
    assert torch.equal(alone[0], batch[2])
    assert torch.allclose(alone_lp[0], batch_lp[2], atol=1e-6)
    if attention != "none":
        for a, b in zip(alone_w, batch_w):
            assert torch.allclose(a[0], b[2, :3], atol=1e-6)
            assert b[2, 3:].abs().max() == 0.0


def test_reorder_moves_every_part_of_the_state():
    torch.manual_seed(3)
    model = small_model("additive", "lstm").eval()
    src, lengths, _ = reversal_batch(3, torch.Generator().manual_seed(3))
    tokens = torch.tensor([4, 5, 6])
    index = torch.tensor([2, 2, 0])
    with torch.no_grad():
        _, state = model.step(torch.full((3,), BOS), model.start(src, lengths))
        moved = model.reorder(state, index)
        log_probs, _ = model.step(tokens, state)
        moved_log_probs, _ = model.step(tokens[index], moved)
    assert torch.equal(moved.mask, state.mask[index])
    assert torch.equal(moved.cell, state.cell[:, index])
    assert torch.allclose(moved_log_probs, log_probs[index], atol=1e-6)


def test_teacher_forcing_ratio_changes_training_inputs():
    torch.manual_seed(4)
    model = small_model("dot").eval()
    src, lengths, tgt = reversal_batch(4, torch.Generator().manual_seed(4))
    with torch.no_grad():
        forced = model(src, lengths, tgt[:, :-1], teacher_forcing=1.0)
        free = model(src, lengths, tgt[:, :-1], teacher_forcing=0.0)
        # with no teacher forcing, step t's input is step t-1's argmax: recompute greedily
        out, log_probs, _ = greedy(model, src, lengths, tgt.size(1) - 1)
    assert torch.allclose(F.log_softmax(free, dim=-1), log_probs, atol=1e-6)
    assert torch.allclose(forced[:, 0], free[:, 0])
    assert not torch.allclose(forced, free)


@pytest.mark.parametrize("attention", ["additive", "dot"])
def test_without_input_feeding_the_batched_forward_equals_stepping(attention):
    torch.manual_seed(5)
    model = small_model(attention, input_feeding=False).eval()
    src, lengths, tgt = reversal_batch(4, torch.Generator().manual_seed(5))
    with torch.no_grad():
        batched = model(src, lengths, tgt[:, :-1])  # one pass over all steps
        state, steps = model.start(src, lengths), []
        for t in range(tgt.size(1) - 1):
            logits, state = model.step_logits(tgt[:, t], state)
            steps.append(logits)
    assert torch.allclose(batched, torch.stack(steps, 1), atol=1e-5)


def test_config_errors_name_the_value():
    with pytest.raises(ValueError, match="attention='luong'"):
        Seq2SeqConfig(5, 5, attention="luong")
    with pytest.raises(ValueError, match="cell='rnn'"):
        Seq2SeqConfig(5, 5, cell="rnn")
    with pytest.raises(ValueError, match="hidden_size=7 must be even"):
        Seq2SeqConfig(5, 5, hidden_size=7)
    with pytest.raises(ValueError, match="at least one token"):
        small_model().start(torch.tensor([[3, 0]]), torch.tensor([0]))
