"""Self-conditioned CTC (``self_condition``): the equations against torch.nn with copied weights,
the loss against F.ctc_loss, batch independence, gradients, and the refusals."""

import math

import pytest
import torch
from torch import nn

from rnnkit.errors import ConfigError
from rnnkit.speech.data import Example, collate
from rnnkit.speech.model import AcousticConfig, AcousticModel
from rnnkit.speech.recipe import SpeechRecipe
from rnnkit.speech.task import SpeechTask


def examples(lengths, n_mels=4):
    g = torch.Generator().manual_seed(1)
    return [
        Example(torch.randn(n, n_mels, generator=g), torch.tensor([1, 2, 2, 1][: 1 + n % 4]), "x")
        for n in lengths
    ]


def model(w=0.3, layers=2, cell="gru", dropout=0.0, seed=0):
    torch.manual_seed(seed)
    config = AcousticConfig(n_mels=4, num_classes=3, stack=2, hidden_size=5, num_layers=layers,
                            cell=cell, dropout=dropout, self_condition=w)  # fmt: skip
    return AcousticModel(config)


def torch_layer(ours, width, layers, cell):
    """torch.nn's bidirectional layer with ``ours``'s weights."""
    ref = (nn.GRU if cell == "gru" else nn.LSTM)(width, 5, layers, bidirectional=True)
    ref.load_state_dict({k: v for k, v in ours.state_dict().items()})
    return ref.double()


@pytest.mark.parametrize(("cell", "layers"), [("gru", 2), ("lstm", 3)])
def test_the_equations_against_torch_nn_with_the_same_weights(cell, layers):
    m = model(layers=layers, cell=cell).double().eval()
    data = examples([9])
    feats = data[0].feats.double().unsqueeze(0)
    with torch.no_grad():
        final, inner, lengths = m.forward_all(feats, torch.tensor([9]))
        x = m.stack_frames(feats, torch.tensor([9]))[0]  # (1, 5, 8)
        first, _ = torch_layer(m.rnn, 8, 1, cell)(x.transpose(0, 1))  # (T', 1, 10)
        z = torch.log_softmax(m.output(first), dim=-1)
        upper, _ = torch_layer(m.upper, 10, layers - 1, cell)(first + m.condition(z.exp()))
        want = torch.log_softmax(m.output(upper), dim=-1)
    assert lengths.tolist() == [5] and final.shape == inner.shape == (5, 1, 3)
    torch.testing.assert_close(inner, z, atol=1e-12, rtol=0)
    torch.testing.assert_close(final, want, atol=1e-12, rtol=0)
    # forward is the final output alone
    torch.testing.assert_close(m(feats, torch.tensor([9]))[0], final, atol=1e-14, rtol=0)


def test_an_utterance_does_not_depend_on_its_batch():
    m = model().eval()
    data = examples([10, 7, 4])
    batch = collate(data)
    with torch.no_grad():
        final, inner, lengths = m.forward_all(batch.feats, batch.lengths)
        alone, alone_inner, _ = m.forward_all(data[1].feats.unsqueeze(0), torch.tensor([7]))
    assert lengths.tolist() == [5, 4, 2]
    torch.testing.assert_close(final[:4, 1], alone[:, 0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(inner[:4, 1], alone_inner[:, 0], atol=1e-5, rtol=1e-5)


def test_training_loss_mixes_both_ctc_losses_and_validation_scores_the_output():
    m = model(w=0.25).eval()  # no dropout: the two calls see the same network
    data = examples([8, 11, 6, 13])
    task = SpeechTask({"train": data, "valid": data}, batch_frames=200, seed=0, augment=None)
    batch = collate(data)
    loss, labels, _ = task.train_loss(m, batch, None)
    final, inner, lengths = m.forward_all(batch.feats, batch.lengths)

    def ctc(log_probs):
        return nn.functional.ctc_loss(log_probs, batch.targets, lengths, batch.target_lengths,
                                      reduction="sum", zero_infinity=True)  # fmt: skip

    n = int(batch.target_lengths.sum())
    assert labels == n
    want = (0.75 * ctc(final) + 0.25 * ctc(inner)) / n
    torch.testing.assert_close(loss, want, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        assert math.isclose(task.evaluate(m, "valid"), float(ctc(final)) / n, rel_tol=1e-5)


def test_the_gradient_reaches_both_layers_and_the_conditioning():
    m = model(w=0.3, dropout=0.1).train()
    data = examples([12, 9])
    task = SpeechTask({"train": data, "valid": data}, batch_frames=200, seed=0, augment=None)
    loss, _, _ = task.train_loss(m, collate(data), None)
    loss.backward()
    for name in ("rnn.weight_hh_l0", "upper.weight_hh_l0", "condition.weight", "output.weight"):
        grad = dict(m.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_off_by_default_and_the_plain_stack_is_unchanged():
    plain = AcousticModel(AcousticConfig(n_mels=4, num_classes=3))
    assert plain.upper is None and not hasattr(plain, "condition")
    assert SpeechRecipe().self_condition == 0.0
    assert {k for k in plain.state_dict() if k.startswith("rnn.")} == {
        f"rnn.{kind}_{part}_l{layer}{suffix}"
        for kind in ("weight", "bias") for part in ("ih", "hh")
        for layer in (0, 1) for suffix in ("", "_reverse")
    }  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "words"),
    [({"self_condition": 1.0}, "[0, 1)"), ({"self_condition": float("nan")}, "[0, 1)"),
     ({"self_condition": 0.3, "num_layers": 1}, "num_layers >= 2")],
)  # fmt: skip
def test_bad_settings_are_refused_by_the_recipe_and_the_model(changes, words):
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace(")", r"\)")):
        SpeechRecipe(**changes)
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace(")", r"\)")):
        AcousticConfig(n_mels=4, num_classes=3, **changes)


def test_the_cli_option_reaches_the_recipe_and_a_bad_one_is_one_line(run_cli, tmp_path):
    from rnnkit import cli
    from rnnkit.speech.cli import recipe_from_args

    args = cli.build_parser().parse_args(["speech", "train", "--out", "R", "--self-condition",
                                          "0.3"])  # fmt: skip
    assert recipe_from_args(args).self_condition == 0.3
    code, _, err = run_cli("speech", "train", "--out", tmp_path / "r", "--self-condition", "0.3",
                           "--num-layers", "1")  # fmt: skip
    assert code == 2 and len(err.strip().splitlines()) == 1 and "num_layers >= 2" in err
    assert not (tmp_path / "r").exists()
