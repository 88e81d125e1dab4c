"""Training options that expose the decoder to other previous words than the true ones:
scheduled sampling (its own best guesses) and word dropout (``<unk>``); and the drawing of the
reference captions, uniform or weighted by their consensus."""

import math
import random

import pytest
import torch
from tiny_models import VOCAB, random_images, tiny_model

from rnnkit.caption.api import build_task
from rnnkit.caption.recipe import (
    DRAWN_FOR_EVERY_DECODER,
    RERANK,
    RERANK_WEIGHTED,
    SAMPLING_RAMP_EPOCHS,
    CaptionRecipe,
    rerank_of,
)
from rnnkit.caption.task import CaptionTask, collate, consensus_weights
from rnnkit.errors import ConfigError

BOS, PAD, UNK = VOCAB.bos_index, VOCAB.pad_index, VOCAB.unk_index


def _model(decoder="attention", seed=0, dtype=torch.float32, **options):
    return tiny_model(seed, dtype, decoder=decoder, **options)


_images = random_images


def _task(n=8, **options):
    g = torch.Generator().manual_seed(1)
    captions = [[torch.randint(3, len(VOCAB), (int(torch.randint(2, 7, (1,), generator=g)),),
                               generator=g).tolist()] for _ in range(n)]  # fmt: skip
    inputs = _images(n)
    data = {"train": captions, "valid": captions[:2]}
    return CaptionTask({"train": inputs, "valid": inputs[:2]}, data, VOCAB, batch_size=4,
                       attention_penalty=0.0, **options)  # fmt: skip


@pytest.mark.parametrize("decoder", ["attention", "mean", "text"])
def test_sampling_everywhere_feeds_the_greedy_words(decoder):
    """With rate 1 every step reads the previous step's best guess: the logits are those of a
    teacher-forced pass over greedy search's own words, and so are the gradients."""
    model, images = _model(decoder), _images(3)
    tgt_in = torch.tensor([[BOS, 3, 4, 6, 7], [BOS, 5, 6, 7, 8], [BOS, 4, 4, 4, PAD]])
    with torch.no_grad():  # greedy search by hand (no constraints): the words it would read
        state, words = model.start(images), [torch.full((3,), BOS)]
        for _ in range(tgt_in.size(1) - 1):
            log_probs, state = model.step(words[-1], state)
            words.append(log_probs.argmax(dim=1))
    greedy_in = torch.stack(words, dim=1)  # (3, T)
    assert not torch.equal(greedy_in, tgt_in)  # the check would prove nothing otherwise

    sampled, _ = model(images, tgt_in, sampling=1.0)
    forced, _ = model(images, greedy_in)
    torch.testing.assert_close(sampled, forced)
    (g1,) = torch.autograd.grad(sampled.square().sum(), model.output.weight)
    (g2,) = torch.autograd.grad(forced.square().sum(), model.output.weight)
    torch.testing.assert_close(g1, g2)


def test_some_sampling_reads_the_true_word_or_the_guess_as_the_draws_say():
    model, images = _model(), _images(6)
    tgt_in = torch.randint(3, len(VOCAB), (6, 8), generator=torch.Generator().manual_seed(2))
    tgt_in[:, 0] = BOS
    with torch.no_grad():
        forced, _ = model(images, tgt_in)
        torch.testing.assert_close(model(images, tgt_in, sampling=0.0)[0], forced)
        torch.manual_seed(3)
        mixed, _ = model(images, tgt_in, sampling=0.5)
        torch.manual_seed(3)  # the same draws: one per row and step after the first
        draws = torch.stack([torch.rand(6) < 0.5 for _ in range(7)], dim=1)  # (N, T-1)
        guesses = mixed[:, :-1].argmax(dim=2)  # (N, T-1) the word each step guessed
        read = torch.cat([tgt_in[:, :1], torch.where(draws, guesses, tgt_in[:, 1:])], dim=1)
        replayed, _ = model(images, read)  # teacher-forced over the words the pass read
    assert draws.any() and not draws.all() and not torch.equal(read, tgt_in)
    torch.testing.assert_close(mixed, replayed)
    assert not torch.allclose(mixed, forced)


def test_scheduled_sampling_ramps_up_over_the_first_epochs():
    task = _task(n=8, scheduled_sampling=0.4)  # 2 batches an epoch
    steps = task.steps_per_epoch() * SAMPLING_RAMP_EPOCHS
    rates = [b.sampling for epoch in range(SAMPLING_RAMP_EPOCHS + 1)
             for b in task.train_batches(epoch, 0)]  # fmt: skip
    assert rates[:steps] == pytest.approx([0.4 * k / steps for k in range(steps)])
    assert rates[steps:] == pytest.approx([0.4] * task.steps_per_epoch())
    resumed = next(task.train_batches(1, 1))  # a resumed epoch continues the ramp
    assert resumed.sampling == pytest.approx(rates[task.steps_per_epoch() + 1])


class _Spy(torch.nn.Module):
    """Records the previous words it is given; a uniform model otherwise."""

    def __init__(self):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(len(VOCAB)))
        self.seen = []

    def forward(self, inputs, tgt_in, **options):
        self.seen.append((tgt_in.clone(), options))
        return self.bias.expand(*tgt_in.shape, -1), None


def test_word_dropout_replaces_words_but_not_the_start_padding_or_targets():
    task, spy = _task(n=64, word_dropout=0.3), _Spy()
    torch.manual_seed(0)
    for batch in task.train_batches(0, 0):
        task.train_loss(spy, batch, None)
        given = spy.seen[-1][0]
        true = batch.tgt_in
        assert torch.equal(given[:, 0], true[:, 0])  # <bos>
        assert torch.equal(given == PAD, true == PAD)  # padding stays padding
        changed = given != true
        assert torch.equal(changed, changed & (given == UNK))  # only ever to <unk>
    words = sum(int((b.tgt_in[:, 1:] != PAD).sum()) for b in task.train_batches(0, 0))
    dropped = sum(int((seen[:, 1:] == UNK).sum()) for seen, _ in spy.seen)
    assert 0.2 < dropped / words < 0.4
    assert all(options == {} for _, options in spy.seen)  # no sampling asked for


def test_without_the_options_the_task_gives_the_true_words():
    task, spy = _task(), _Spy()
    batch = next(task.train_batches(3, 0))
    task.train_loss(spy, batch, None)
    assert torch.equal(spy.seen[0][0], batch.tgt_in) and spy.seen[0][1] == {}


def test_sampling_and_word_dropout_train_the_attention_decoder_only():
    splits = {
        "train": type("S", (), {"images": _images(4).numpy(), "captions": [[["a"]]] * 4})(),
    }
    expected = {"attention": (0.3, 0.2), "mean": (0.0, 0.0), "text": (0.0, 0.0)}
    for decoder, rates in expected.items():
        recipe = CaptionRecipe(decoder=decoder, scheduled_sampling=0.3, word_dropout=0.2)
        task = build_task(recipe, splits, VOCAB, seed=0)
        assert (task.sampling, task.word_dropout) == rates


def _split(n):
    """``n`` pictures, each with three references of which "a red" and "a red circle" agree."""
    refs = [[["a", "red"], ["a", "red", "circle"], ["blue"]] for _ in range(n)]
    return type("S", (), {"images": _images(n).numpy(), "captions": refs})()


@pytest.mark.parametrize("k", [None, 0.0, 5.0])
def test_every_decoder_trains_on_the_same_reference_draw(k):
    """The reference draw belongs to the data: the three decoders see the same captions in the
    same order (weighted by consensus at k > 0 and by default on the scenes, uniform at 0)."""
    splits = {"train": _split(64), "valid": _split(2)}
    drawn = {}
    for decoder in ("attention", "mean", "text"):
        recipe = CaptionRecipe(decoder=decoder, consensus_references=k)
        task = build_task(recipe, splits, VOCAB, seed=3)
        assert (task.weights is None) == (k == 0.0)
        drawn[decoder] = [b.tgt_out.tolist() for e in range(3) for b in task.train_batches(e, 0)]
    assert drawn["mean"] == drawn["attention"] == drawn["text"]
    blue = VOCAB.encode(["blue"])[0]
    share = sum(row[0] == blue for rows in drawn["mean"] for row in rows) / (3 * 64)
    # weights 1, 1 and exp(-k / 3) (agreements 1/3, 1/3, 0): the share of "blue" is 1/3
    # uniformly (of 192 draws: sd 0.034), 0.086 at k = 5 (sd 0.02), 1e-6 at the default 40
    expected = {0.0: (0.2, 1.0), 5.0: (0.02, 0.15), None: (0.0, 0.0)}[k]
    assert expected[0] <= share <= expected[1]


def test_sampling_gradients_match_finite_differences():
    """float64 gradcheck through a pass that reads its own guesses, from frozen-encoder
    features (a 7x7 grid): the guesses are constants, as a small change does not flip them."""
    model = _model(dtype=torch.float64, encoder="efficientnet-lite0")
    features = torch.randn(2, 49, 8, dtype=torch.float64,
                           generator=torch.Generator().manual_seed(3))  # fmt: skip
    tgt_in = torch.tensor([[BOS, 3, 4, 6], [BOS, 5, 6, 7]])

    def logits_of(features):
        return model(features, tgt_in, sampling=1.0)[0]

    assert torch.autograd.gradcheck(logits_of, (features.requires_grad_(),), eps=1e-6, atol=1e-6)


def test_bad_options_are_refused():
    for name in ("scheduled_sampling", "word_dropout"):
        for bad in (-0.1, 1.0, 2.0):
            with pytest.raises(ConfigError, match=name):
                CaptionRecipe(**{name: bad})
    for bad in (-1.0, 101.0, math.nan):
        with pytest.raises(ConfigError, match="consensus_references"):
            CaptionRecipe(consensus_references=bad)


def test_consensus_weights_by_hand():
    # [1, 2, 3] has the n-grams 1 2 3 12 23 123, [1, 2] has 1 2 12: Dice 2 * 3 / 9 = 2/3;
    # [4] shares nothing. Mean agreement with the others: 1/3, 1/3, 0.
    assert consensus_weights([[1, 2, 3], [1, 2], [4]], 3.0) == pytest.approx(
        [1.0, 1.0, math.exp(-1.0)]
    )
    assert consensus_weights([[1, 2], [1, 2], [3]], 2.0) == pytest.approx([1, 1, math.exp(-1)])
    assert consensus_weights([[5, 6]], 3.0) == [1.0]  # a single reference
    assert consensus_weights([[1], [2], [3]], 5.0) == [1.0, 1.0, 1.0]  # no agreement anywhere


def _reference_task(n, k, seed=0):
    """``n`` images, each with the references [3, 4], [3, 4, 6] and [5] (weights 1, 1, e^-k/2)."""
    refs = [[[3, 4], [3, 4, 6], [5]] for _ in range(n)]
    inputs = _images(n)
    return CaptionTask({"train": inputs, "valid": inputs[:2]}, {"train": refs, "valid": refs[:2]},
                       VOCAB, batch_size=8, consensus_references=k, seed=seed)  # fmt: skip


def _drawn(task, epoch):
    """The first word of every caption drawn in an epoch, by image."""
    words = {}
    for b, batch in enumerate(task.train_batches(epoch, 0)):
        for row, first in enumerate(batch.tgt_out[:, 0].tolist()):
            words[b * task.batch_size + row] = (first, int((batch.tgt_out[row] != PAD).sum()))
    return words


def test_references_are_drawn_in_proportion_to_their_consensus_weights():
    task = _reference_task(64, 4.0)
    agree = [(2 / 3 + 0) / 2, (2 / 3 + 0) / 2, 0.0]  # [3,4] vs [3,4,6]: Dice 2*3/(3+6)
    weights = [math.exp(4.0 * (a - max(agree))) for a in agree]
    expected = weights[2] / sum(weights)  # the share of [5]: 0.119
    drawn = [w for epoch in range(50) for w in _drawn(task, epoch).values()]
    share = sum(first == 5 for first, _ in drawn) / len(drawn)  # of 3,200 draws: sd 0.006
    assert abs(share - expected) < 0.03
    assert abs(share - 1 / 3) > 0.15  # far from uniform


def test_without_consensus_weights_the_references_are_drawn_as_before():
    """k = 0 draws exactly what the uniform draw always did (runs measured before compare)."""
    task = _reference_task(16, 0.0, seed=7)
    for epoch in range(3):
        rng = random.Random(f"7/{epoch}")
        order = list(range(16))
        rng.shuffle(order)
        picks = [rng.randrange(3) for _ in order]
        lengths = {0: 3, 1: 4, 2: 2}  # words + <eos> of each reference
        drawn = _drawn(task, epoch)
        assert [drawn[k][1] for k in range(16)] == [lengths[p] for p in picks]


def test_collate_is_unchanged_by_the_options():
    batch = collate(_images(2), [[3, 4], [5]], VOCAB)
    assert batch.sampling == 0.0


def test_consensus_references_are_the_default_and_old_runs_keep_the_uniform_draw():
    assert CaptionRecipe().consensus_k() == 40.0  # the synthetic scenes
    for data in ("captions.tsv", "dataset_flickr8k.json"):  # a user's captions: uniform ...
        assert CaptionRecipe(data=data).consensus_k() == 0.0
        assert (
            CaptionRecipe(data=data, consensus_references=20.0).consensus_k() == 20.0
        )  # ... unless asked
    assert CaptionRecipe(consensus_references=0.0).consensus_k() == 0.0
    saved = {k: v for k, v in CaptionRecipe().__dict__.items() if k != "consensus_references"}
    assert CaptionRecipe.from_dict(saved).consensus_k() == 0.0  # a run saved before
    assert CaptionRecipe.from_dict({"consensus_references": 20.0}).consensus_k() == 20.0


def test_old_baseline_runs_keep_the_draw_they_were_trained_with():
    """Runs saved while the weighted draw was the attention decoder's alone recorded k = 40 for
    the baselines too, which drew uniformly: they load (and resume, and rank the beam) as
    trained. Runs saved now record that k applied to every decoder."""
    for decoder in ("mean", "text"):
        old = {"decoder": decoder, "consensus_references": 40.0}
        assert CaptionRecipe.from_dict(old).consensus_k() == 0.0
        assert rerank_of(CaptionRecipe.from_dict(old)) == RERANK
        new = {**old, DRAWN_FOR_EVERY_DECODER: True}
        assert CaptionRecipe.from_dict(new).consensus_k() == 40.0
        assert rerank_of(CaptionRecipe.from_dict(new)) == RERANK_WEIGHTED
    for saved in (
        {"consensus_references": 40.0},
        {"decoder": "attention", "consensus_references": 40.0},
    ):
        assert CaptionRecipe.from_dict(saved).consensus_k() == 40.0  # attention drew so
