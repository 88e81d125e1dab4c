"""Glimpses: several attention heads per step and the places they look, fed to the decoder."""

import pytest
import torch
from tiny_models import VOCAB, random_images, tiny_model

from rnnkit import search
from rnnkit.caption.api import Captioner, attention_of, decode
from rnnkit.caption.model import CaptionConfig, CaptionModel, cell_coordinates
from rnnkit.caption.recipe import CaptionRecipe
from rnnkit.caption.task import CaptionTask
from rnnkit.errors import ConfigError
from rnnkit.search import SearchOptions

EOS, BOS = VOCAB.eos_index, VOCAB.bos_index
VARIANTS = [
    {"glimpse_positions": "none"},  # the model before glimpse positions
    {"glimpse_positions": "memory"},
    {"glimpses": 2},
    {"glimpses": 2, "glimpse_positions": "current"},
    {"glimpse_positions": "previous"},
    {"glimpses": 2, "glimpse_positions": "previous"},
    {"glimpses": 3, "glimpse_positions": "previous", "cell_positions": "coordinates"},
]


_model, _images = tiny_model, random_images


def test_cell_coordinates_run_row_by_row_from_the_top_left():
    coords = cell_coordinates(torch.zeros(2, 16, 5))  # a 4x4 grid
    assert coords.shape == (16, 2)
    third = 1 / 3
    expected = {0: (-1, -1), 3: (1, -1), 5: (-third, -third), 12: (-1, 1), 15: (1, 1)}
    for cell, (x, y) in expected.items():
        torch.testing.assert_close(coords[cell], torch.tensor([x, y], dtype=torch.float32))
    with pytest.raises(ValueError, match="square grid of cells, got 3"):
        cell_coordinates(torch.zeros(2, 3, 5))


@pytest.mark.parametrize("options", VARIANTS)
def test_teacher_forced_forward_equals_step_by_step_decoding(options):
    model, images = _model(**options), _images(3)
    tgt_in = torch.tensor([[BOS, 3, 4, 6], [BOS, 5, 6, 7], [BOS, 4, 4, 4]])
    with torch.no_grad():
        logits, alphas = model(images, tgt_in)
        state = model.start(images)
        for t in range(tgt_in.size(1)):
            log_probs, state = model.step(tgt_in[:, t], state)
            torch.testing.assert_close(log_probs, torch.log_softmax(logits[:, t], dim=1))
            torch.testing.assert_close(state.weights, alphas[:, t])
    assert alphas.shape == (3, 4, 16)
    torch.testing.assert_close(alphas.sum(dim=2), torch.ones(3, 4))


def test_each_glimpse_is_an_attention_head_with_its_own_gate():
    model, images = _model(glimpses=2), _images(3)
    assert len(model.more_attention) == len(model.more_gates) == 1
    with torch.no_grad():
        state = model.start(images)
        contexts, weights, where = model.glimpse(state)
        coords = cell_coordinates(state.features)
        alphas = []
        for k, (attention, gate) in enumerate(
            [(model.attention, model.gate), (model.more_attention[0], model.more_gates[0])]
        ):
            context, alpha = attention(state.hidden, state.features)  # no precomputed keys
            beta = torch.sigmoid(gate(state.hidden))
            torch.testing.assert_close(contexts[:, 8 * k : 8 * (k + 1)], beta * context)
            # the expected place of the glimpse: sum over cells of alpha_i (x_i, y_i)
            torch.testing.assert_close(where[:, 2 * k : 2 * (k + 1)], alpha @ coords)
            alphas.append(alpha)
        torch.testing.assert_close(weights, (alphas[0] + alphas[1]) / 2)
        assert (alphas[0] - alphas[1]).abs().max() > 1e-4  # two heads, two different looks


def test_where_the_glimpses_look_feeds_the_lstm_and_the_output_layer():
    # The equations written out by hand: inputs [E y; z; p_t; p_{t-1}], output
    # L_o(h_t + L_z z_t + L_p [p_t; p_{t-1}]), p_0 = 0 (the centre of the picture).
    model, images = _model(glimpses=2, glimpse_positions="previous"), _images(3)
    tokens = [torch.full((3,), BOS), torch.tensor([3, 4, 5])]
    with torch.no_grad():
        state = model.start(images)
        assert torch.equal(state.where, torch.zeros(3, 4))
        previous, hidden, cell = state.where, state.hidden, state.cell
        for words in tokens:
            contexts, _, where = model.glimpse(state)
            places = torch.cat([where, previous], dim=1)  # (N, 8)
            inputs = torch.cat([model.embedding(words), contexts, places], dim=1)
            hidden, cell = model.cell(inputs, (hidden, cell))
            top = hidden + model.context_output(contexts) + model.position_output(places)
            logits, state = model.advance(words, state)
            torch.testing.assert_close(logits, model.output(top))
            torch.testing.assert_close(state.where, where)  # remembered for the next step
            previous = where


def test_the_memory_keeps_the_last_words_place_as_far_as_the_word_says():
    # m_t = g_t p_{t-1} + (1 - g_t) m_{t-1}, g_t = sigmoid(w . E y_{t-1} + b), m_0 = p_0 = 0; the
    # LSTM and the output read [p_t; m_t].
    model, images = _model(glimpses=2, glimpse_positions="memory"), _images(3)
    assert CaptionRecipe().glimpse_positions == "memory"  # the attention model's default
    words = [torch.full((3,), BOS), torch.tensor([3, 4, 5]), torch.tensor([6, 6, 7])]
    with torch.no_grad():
        state = model.start(images)
        assert torch.equal(state.memory, torch.zeros(3, 4))
        memory, hidden, cell = state.memory, state.hidden, state.cell
        for tokens in words:
            contexts, _, where = model.glimpse(state)
            keep = torch.sigmoid(model.memory_gate(model.embedding(tokens)))  # (N, 1)
            memory = keep * state.where + (1 - keep) * memory
            places = torch.cat([where, memory], dim=1)
            inputs = torch.cat([model.embedding(tokens), contexts, places], dim=1)
            hidden, cell = model.cell(inputs, (hidden, cell))
            top = hidden + model.context_output(contexts) + model.position_output(places)
            logits, state = model.advance(tokens, state)
            torch.testing.assert_close(logits, model.output(top))
            torch.testing.assert_close(state.memory, memory)
            torch.testing.assert_close(state.where, where)
        # A gate wide open remembers the last word's place; a shut one keeps the old memory.
        for bias, expected in ((50.0, state.where), (-50.0, state.memory)):
            model.memory_gate.bias.fill_(bias)
            _, after = model.advance(torch.tensor([3, 3, 3]), state)
            torch.testing.assert_close(after.memory, expected)


@pytest.mark.parametrize("mode", ["current", "previous", "memory"])
def test_the_places_reach_the_words(mode):
    model, images = _model(glimpse_positions=mode), _images(2)
    with torch.no_grad():
        state = model.start(images)
        logits, _ = model.advance(torch.full((2,), BOS), state)
        model.position_output.weight.zero_()
        unplaced, _ = model.advance(torch.full((2,), BOS), state)
    assert (logits - unplaced).abs().max() > 1e-4


def test_gradients_through_the_glimpses_and_their_places_match_finite_differences():
    # float64, frozen-encoder features (a 7x7 grid) as the input; three steps, so the remembered
    # place of step 1 enters steps 2 and 3 through the memory gate.
    model = _model(
        dtype=torch.float64, encoder="efficientnet-lite0", glimpses=2,
        glimpse_positions="memory",
    )  # fmt: skip
    features = torch.randn(
        2, 49, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3)
    )
    tgt_in = torch.tensor([[BOS, 3, 4], [BOS, 5, 6]])

    def logits_of(features):
        return model(features, tgt_in)[0]

    assert torch.autograd.gradcheck(logits_of, (features.requires_grad_(),), eps=1e-6, atol=1e-6)
    loss = logits_of(features).logsumexp(dim=-1).sum()
    loss.backward()
    names = ("more_attention.0.v.weight", "more_gates.0.weight", "position_output.weight",
             "memory_gate.weight")  # fmt: skip
    for name in names:
        assert model.get_parameter(name).grad.abs().max() > 0, name


@pytest.mark.parametrize("options", VARIANTS[1:5])
def test_greedy_and_beam_search_come_from_the_shared_module(options):
    model, images = _model(**options), _images(5)
    bos = torch.full((5,), BOS)
    with torch.no_grad():
        greedy = search.decode(model, model.start(images), bos, EOS, 8, SearchOptions())
        beam = search.beam_search(model, model.start(images), bos, EOS, 1, 8)
        assert [h[0].tokens for h in greedy] == [b[0].tokens for b in beam]
        # A beam of 3 reorders the state (where included) between steps: its captions are
        # scored as the teacher-forced model scores them.
        found = search.beam_search(model, model.start(images), bos, EOS, 3, 8, n_best=3)
        for i, hyps in enumerate(found):
            for h in hyps:
                tgt = torch.tensor([[BOS, *h.tokens]])
                log_probs = model(images[i : i + 1], tgt)[0].log_softmax(-1)[0]
                ended = len(h.tokens) < 8  # at the length limit a caption has no eos
                target = torch.tensor([*h.tokens, EOS][: len(h.tokens) + ended])
                total = log_probs[: len(target)].gather(1, target[:, None]).sum()
                assert float(total) == pytest.approx(h.log_prob, abs=1e-4)


@pytest.mark.parametrize("options", VARIANTS[1:5])
def test_every_caption_ends_with_the_end_token_within_the_limit(options):
    model, images = _model(**options), _images(4)
    captioner = Captioner(model, VOCAB, CaptionRecipe(image_size=32, max_length=6), "")
    with torch.no_grad():
        model.output.bias[EOS] = -50.0  # a model that would never end a caption by itself
    for width in (1, 3):
        for hyps in decode(captioner, images, beam_size=width, n_best=width):
            assert len(hyps) == width and all(len(h.tokens) <= 5 for h in hyps)


def test_reorder_moves_the_remembered_places():
    model, images = _model(glimpses=2, glimpse_positions="memory"), _images(3)
    _, state = model.step(torch.full((3,), BOS), model.start(images))
    index = torch.tensor([2, 0, 0])
    moved = model.reorder(state, index)
    for name in ("hidden", "cell", "features", "projected", "weights", "where", "memory"):
        assert torch.equal(getattr(moved, name), getattr(state, name)[index]), name


def test_padding_after_a_caption_does_not_change_its_attention():
    captioner = Captioner(
        _model(glimpses=2, glimpse_positions="previous"), VOCAB, CaptionRecipe(image_size=32), ""
    )
    images, captions = _images(3), [[3, 4, 5, 6], [7], []]
    together = attention_of(captioner, images, captions)
    for i, words in enumerate(captions):
        alone = attention_of(captioner, images[i : i + 1], [words])[0]
        torch.testing.assert_close(torch.from_numpy(together[i]), torch.from_numpy(alone))


def test_the_penalty_reads_the_mean_attention_of_the_glimpses_over_the_words():
    model = _model(glimpses=2, glimpse_positions="current")
    images = _images(4)
    captions = [[[3, 4], [5, 6, 7]], [[4]], [[3, 3, 3]], [[5]]]
    data = {"train": captions, "valid": captions, "test": captions}
    inputs = {"train": images, "valid": images, "test": images}
    task = CaptionTask(inputs, data, VOCAB, batch_size=4, attention_penalty=1.0, seed=0)
    batch = next(task.train_batches(0, 0))
    loss, _, _ = task.train_loss(model, batch, None)
    logits, alphas = model(batch.inputs, batch.tgt_in)
    mask = (batch.tgt_out != VOCAB.pad_index).float()  # padding steps attend to nothing
    cross_entropy = torch.nn.functional.cross_entropy(
        logits.flatten(0, 1), batch.tgt_out.flatten(), ignore_index=VOCAB.pad_index
    )
    attended = torch.einsum("ntl,nt->nl", alphas, mask)
    torch.testing.assert_close(loss, cross_entropy + ((1 - attended) ** 2).mean())


def test_one_glimpse_keeps_the_parameter_names_of_earlier_runs():
    names = set(_model(glimpse_positions="none").state_dict())
    assert not any(n.startswith(("more_", "position_output")) for n in names)
    assert {"attention.v.weight", "gate.weight"} <= names
    old = CaptionConfig.from_dict({"vocab_size": 10, "decoder": "attention"})
    assert old.glimpses == 1 and old.glimpse_positions == "none"


def test_bad_glimpse_options_are_refused():
    with pytest.raises(ConfigError, match="glimpses must be an integer from 1 to 4, got 0"):
        CaptionConfig(vocab_size=10, glimpses=0)
    with pytest.raises(ConfigError, match="glimpse_positions must be one of none, current"):
        CaptionRecipe(glimpse_positions="everywhere")
    with pytest.raises(ConfigError, match="got 5"):
        CaptionRecipe(glimpses=5)


@pytest.mark.parametrize("decoder", ["mean", "text"])
def test_the_baselines_ignore_the_glimpse_options(decoder):
    def model(**options):
        torch.manual_seed(0)
        config = CaptionConfig(
            vocab_size=len(VOCAB), decoder=decoder, image_size=32, channels=4, feature_size=8,
            embedding_dim=8, hidden_size=16, attention_size=8, dropout=0.0, **options,
        )  # fmt: skip
        return CaptionModel(config).eval()

    new, old = model(glimpses=2, glimpse_positions="memory"), model(glimpse_positions="none")
    assert new.state_dict().keys() == old.state_dict().keys()
    tgt_in = torch.tensor([[BOS, 3, 4], [BOS, 5, 6]])
    with torch.no_grad():
        torch.testing.assert_close(new(_images(2), tgt_in)[0], old(_images(2), tgt_in)[0])
