"""The captioning model: decoding contract, length limit, step/forward agreement, the loss."""

import numpy as np
import pytest
import torch

from rnnkit import search
from rnnkit.caption.api import Captioner, decode
from rnnkit.caption.data import SPECIALS
from rnnkit.caption.model import CaptionConfig, CaptionModel
from rnnkit.caption.recipe import CaptionRecipe
from rnnkit.caption.task import CaptionTask, collate
from rnnkit.data.tokenize import Vocab
from rnnkit.errors import ConfigError
from rnnkit.search import SearchOptions

VOCAB = Vocab(["a", "red", "blue", "circle", "square", "left", "of"], specials=SPECIALS)
EOS, BOS = VOCAB.eos_index, VOCAB.bos_index


def _model(decoder, seed=0, **options):
    torch.manual_seed(seed)
    config = CaptionConfig(
        vocab_size=len(VOCAB), decoder=decoder, image_size=32, channels=4, feature_size=8,
        embedding_dim=8, hidden_size=16, attention_size=8, dropout=0.0, **options,
    )  # fmt: skip
    return CaptionModel(config).eval()


def _images(n, seed=0):
    return torch.randint(0, 256, (n, 32, 32, 3), generator=torch.Generator().manual_seed(seed),
                         dtype=torch.uint8)  # fmt: skip


@pytest.mark.parametrize("decoder", ["attention", "mean", "text"])
def test_beam_of_one_is_greedy_search(decoder):
    model, images = _model(decoder), _images(5)
    bos = torch.full((5,), BOS)
    with torch.no_grad():
        greedy = search.decode(model, model.start(images), bos, EOS, 8, SearchOptions())
        beam = search.beam_search(model, model.start(images), bos, EOS, 1, 8)
    assert [h[0].tokens for h in greedy] == [b[0].tokens for b in beam]
    assert [h[0].log_prob for h in greedy] == pytest.approx([b[0].log_prob for b in beam], abs=1e-5)


@pytest.mark.parametrize("decoder", ["attention", "mean", "text"])
def test_every_caption_ends_with_the_end_token_within_the_limit(decoder):
    model, images = _model(decoder), _images(4)
    captioner = Captioner(model, VOCAB, CaptionRecipe(image_size=32, max_length=6), "")
    with torch.no_grad():
        model.output.bias[EOS] = -50.0  # a model that would never end a caption by itself
        bos = torch.full((4,), BOS)
        unlimited = search.decode(model, model.start(images), bos, EOS, 6)
        assert all(len(h[0].tokens) == 6 for h in unlimited)  # ran out of steps without eos
        for width in (1, 3):
            found = decode(captioner, images, beam_size=width, n_best=width)
            for hyps in found:
                assert len(hyps) == width
                for h in hyps:  # ended by eos at step 6 at the latest: at most 5 words
                    assert len(h.tokens) <= 5 and h.log_prob > -float("inf")
                    specials = {EOS, BOS, VOCAB.pad_index, VOCAB.unk_index}
                    assert not specials & set(h.tokens)


@pytest.mark.parametrize(
    "decoder, options",
    [
        ("attention", {}),
        ("attention", {"deep_output": False}),
        ("attention", {"cell_positions": "learned"}),
        ("attention", {"cell_positions": "coordinates"}),
        ("mean", {}),
        ("text", {}),
    ],
)
def test_teacher_forced_forward_equals_step_by_step_decoding(decoder, options):
    model, images = _model(decoder, **options), _images(3)
    tgt_in = torch.tensor([[BOS, 3, 4, 6], [BOS, 5, 6, 7], [BOS, 4, 4, 4]])
    with torch.no_grad():
        logits, alphas = model(images, tgt_in)
        state = model.start(images)
        for t in range(tgt_in.size(1)):
            log_probs, state = model.step(tgt_in[:, t], state)
            torch.testing.assert_close(log_probs, torch.log_softmax(logits[:, t], dim=1))
            if decoder == "attention":
                torch.testing.assert_close(state.weights, alphas[:, t])
    if decoder == "attention":
        assert alphas.shape == (3, 4, 16)  # a 4x4 grid over 32-px images
        torch.testing.assert_close(alphas.sum(dim=2), torch.ones(3, 4))
    else:
        assert alphas is None


def test_reorder_selects_rows():
    model, images = _model("attention"), _images(3)
    state = model.start(images)
    _, state = model.step(torch.full((3,), BOS), state)
    index = torch.tensor([2, 0, 0])
    moved = model.reorder(state, index)
    for name in ("hidden", "cell", "features", "projected", "weights"):
        assert torch.equal(getattr(moved, name), getattr(state, name)[index])


def test_the_images_matter_to_the_image_models_only():
    for decoder, differs in (("attention", True), ("mean", True), ("text", False)):
        model = _model(decoder)
        tgt_in = torch.tensor([[BOS, 3]])
        with torch.no_grad():
            a, _ = model(_images(1, seed=1), tgt_in)
            b, _ = model(_images(1, seed=2), tgt_in)
        assert (not torch.allclose(a, b)) == differs


def _task(penalty):
    images = _images(6)
    captions = [[[3, 4], [5, 6, 7]], [[4]], [[3, 3, 3]], [[5]], [[6, 7]], [[3, 4, 5]]]
    inputs = {"train": images, "valid": images, "test": images}
    return CaptionTask(
        inputs, {"train": captions, "valid": captions, "test": captions}, VOCAB,
        batch_size=4, attention_penalty=penalty, seed=0,
    )  # fmt: skip


def test_loss_adds_the_doubly_stochastic_penalty():
    model = _model("attention")
    batch = next(_task(0.5).train_batches(0, 0))
    plain, n_plain, _ = _task(0.0).train_loss(model, batch, None)
    with_penalty, n, _ = _task(0.5).train_loss(model, batch, None)
    logits, alphas = model(batch.inputs, batch.tgt_in)
    mask = (batch.tgt_out != VOCAB.pad_index).float()
    cross_entropy = torch.nn.functional.cross_entropy(
        logits.flatten(0, 1), batch.tgt_out.flatten(), ignore_index=VOCAB.pad_index
    )
    attended = torch.einsum("ntl,nt->nl", alphas, mask)  # attention over each caption's words
    expected = cross_entropy + 0.5 * ((1 - attended) ** 2).mean()
    torch.testing.assert_close(plain, cross_entropy)
    torch.testing.assert_close(with_penalty, expected)
    assert n == n_plain == int(mask.sum())


def test_batches_depend_on_seed_and_epoch_and_resume_mid_epoch():
    task = _task(0.0)
    whole = list(task.train_batches(1, 0))
    assert len(whole) == task.steps_per_epoch() == 2
    tail = list(task.train_batches(1, 1))
    assert torch.equal(tail[0].inputs, whole[1].inputs) and torch.equal(
        tail[0].tgt_in, whole[1].tgt_in
    )
    again = list(task.train_batches(1, 0))
    assert all(torch.equal(a.tgt_in, b.tgt_in) for a, b in zip(whole, again))
    other = list(task.train_batches(2, 0))
    assert not all(torch.equal(a.inputs, b.inputs) for a, b in zip(whole, other))


def test_collate_pads_and_frames_captions():
    batch = collate(_images(2), [[3, 4], [5]], VOCAB)
    pad = VOCAB.pad_index
    assert batch.tgt_in.tolist() == [[BOS, 3, 4], [BOS, 5, pad]]
    assert batch.tgt_out.tolist() == [[3, 4, EOS], [5, EOS, pad]]


def test_bad_model_options_are_refused():
    with pytest.raises(ConfigError, match="decoder='lstm'"):
        CaptionConfig(vocab_size=10, decoder="lstm")
    with pytest.raises(ConfigError, match="multiple of 8"):
        CaptionConfig(vocab_size=10, image_size=50)


def test_attention_maps_of_a_batch_equal_those_of_each_caption_alone():
    from rnnkit.caption.api import attention_of

    captioner = Captioner(_model("attention"), VOCAB, CaptionRecipe(image_size=32), "")
    images, captions = _images(3), [[3, 4, 5, 6], [7], []]
    together = attention_of(captioner, images, captions)
    for i, words in enumerate(captions):
        alone = attention_of(captioner, images[i : i + 1], [words])[0]
        assert together[i].shape == (len(words) + 1, 16)
        np.testing.assert_allclose(together[i], alone, rtol=1e-5, atol=1e-6)


def _step_context(model, state):
    """What one step's words see of the image: the gated attended context, or the mean."""
    if model.config.decoder == "mean":
        return state.features.mean(dim=1)  # no attention: the same context at every step
    context, _ = model.attention(state.hidden, state.features, projected=state.projected)
    return torch.sigmoid(model.gate(state.hidden)) * context


@pytest.mark.parametrize("decoder", ["attention", "mean"])
def test_deep_output_adds_the_projected_context_to_the_output_layer(decoder):
    deep, plain = _model(decoder, deep_output=True), _model(decoder, deep_output=False)
    plain.load_state_dict(deep.state_dict(), strict=False)  # all but deep's context_output
    images, tokens = _images(3), torch.tensor([BOS, 3, 4])
    with torch.no_grad():
        state = deep.start(images)
        context = _step_context(deep, state)
        logits, _ = deep.advance(tokens, state)
        base, _ = plain.advance(tokens, plain.start(images))
        # eq. 7 of Xu et al.: L_o(h_t + L_z z_t), so the difference is L_o L_z z_t
        expected = deep.context_output(context) @ deep.output.weight.T
        torch.testing.assert_close(logits - base, expected)
        assert expected.abs().max() > 1e-3  # the context does reach the words


def test_the_image_decoders_differ_by_the_attention_alone():
    # the same parameters but attention's, with the same shapes but the LSTM's input weights
    mean = _model("mean")
    attention = dict(_model("attention").named_parameters())
    names = {n for n in attention if not n.startswith(("attention.", "gate.", "memory_gate."))}
    names -= {"position_output.weight", "position_output.bias"}  # where the attention looks
    shapes = {n: p.shape for n, p in mean.named_parameters()}
    assert set(shapes) == names
    assert all(shapes[n] == attention[n].shape for n in names if not n.startswith("cell."))


def test_runs_saved_before_the_deep_output_option_load_without_it():
    assert CaptionConfig(vocab_size=10).deep_output  # new models have it
    old = CaptionConfig.from_dict({"vocab_size": 10, "decoder": "attention"})
    assert not old.deep_output and not hasattr(CaptionModel(old), "context_output")
    assert old.cell_positions == "none" and not hasattr(CaptionModel(old), "positions")
    # mean pooling saved while the deep output was attention's alone: its config says
    # deep_output (the recipe's default) but the run has no L_z, and keeps none
    saved = {"vocab_size": 10, "decoder": "mean", "deep_output": True}
    assert not hasattr(CaptionModel(CaptionConfig.from_dict(saved)), "context_output")
    now = CaptionConfig(vocab_size=10, decoder="mean").to_dict()
    assert hasattr(CaptionModel(CaptionConfig.from_dict(now)), "context_output")


def test_cell_positions_are_added_to_the_features_attention_reads():
    # Frozen-encoder features (N, L, F) go in as they are, so the model without positions can be
    # given the features plus the positions by hand. Positions with zero mean over the cells
    # leave the initial state (from the mean feature) unchanged; only attention sees them.
    options = dict(encoder="efficientnet-lite0")
    placed, plain = (
        _model("attention", cell_positions="learned", **options),
        _model("attention", **options),
    )
    assert placed.positions.shape == (49, 8)  # EfficientNet-Lite0's 7x7 grid
    plain.load_state_dict(placed.state_dict(), strict=False)  # all but the positions
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        positions = torch.randn(49, 8, generator=g)
        placed.positions.copy_(positions - positions.mean(dim=0))
        features = torch.randn(2, 49, 8, generator=g)
        tgt_in = torch.tensor([[BOS, 3, 4], [BOS, 5, 6]])
        logits, alphas = placed(features, tgt_in)
        expected, expected_alphas = plain(features + placed.positions, tgt_in)
        torch.testing.assert_close(logits, expected)
        torch.testing.assert_close(alphas, expected_alphas)
        unplaced, _ = plain(features, tgt_in)
        assert (logits - unplaced).abs().max() > 1e-3  # the positions do change the words


def test_caption_beam_search_is_reranked_by_consensus_by_default_for_uniform_references():
    model, images = _model("attention", seed=2), _images(6)  # re-ranking changes captions
    recipe = CaptionRecipe(image_size=32, max_length=8, consensus_references=0.0)
    captioner = Captioner(model, VOCAB, recipe, "")
    default = decode(captioner, images, beam_size=3)
    plain = decode(captioner, images, beam_size=3, n_best=3, rerank="none")
    reranked = [search.rerank(hyps, "consensus")[:1] for hyps in plain]
    assert default == reranked and reranked != [h[:1] for h in plain]  # the check can fail
    assert decode(captioner, images, beam_size=3, rerank="none") == [h[:1] for h in plain]


def test_a_model_trained_on_consensus_weighted_references_keeps_the_beams_order():
    model, images = _model("attention", seed=2), _images(6)
    captioner = Captioner(model, VOCAB, CaptionRecipe(image_size=32, max_length=8), "")
    assert captioner.recipe.consensus_k() > 0  # the default on the synthetic scenes
    plain = decode(captioner, images, beam_size=3, n_best=3, rerank="none")
    assert decode(captioner, images, beam_size=3) == [h[:1] for h in plain]
    reranked = decode(captioner, images, beam_size=3, rerank="consensus")
    assert reranked == [search.rerank(hyps, "consensus")[:1] for hyps in plain] != plain
