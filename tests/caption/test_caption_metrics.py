"""BLEU and CIDEr-D against the COCO evaluation code and sacrebleu; grounding by hand."""

import math
import random

import numpy as np
import pytest
import sacrebleu
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider

from rnnkit.caption.metrics import bleu, cider_d, grounding
from rnnkit.caption.scenes import SceneObject

WORDS = "a the red blue small large circle square left of above below and".split()


def _corpus(seed, images=40, refs=(1, 5)):
    rng = random.Random(seed)
    hyps = [[rng.choice(WORDS) for _ in range(rng.randint(1, 10))] for _ in range(images)]
    references = [
        [[rng.choice(WORDS) for _ in range(rng.randint(1, 11))] for _ in range(rng.randint(*refs))]
        for _ in range(images)
    ]
    return hyps, references


def _coco(hyps, references):
    gts = {i: [" ".join(r) for r in refs] for i, refs in enumerate(references)}
    res = {i: [" ".join(h)] for i, h in enumerate(hyps)}
    return gts, res


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bleu_and_cider_d_equal_the_coco_evaluation_code(seed):
    hyps, references = _corpus(seed)
    gts, res = _coco(hyps, references)
    expected_bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    assert bleu(hyps, references) == pytest.approx(expected_bleu, rel=1e-12, abs=1e-15)
    expected_cider, expected_per_image = Cider().compute_score(gts, res)
    corpus, per_image = cider_d(hyps, references, per_image=True)
    assert corpus == pytest.approx(expected_cider, rel=1e-12)
    assert per_image == pytest.approx(list(expected_per_image), rel=1e-12, abs=1e-12)


def test_bleu_equals_sacrebleu_on_pretokenised_text():
    _, references = _corpus(5, images=60, refs=(3, 3))  # sacrebleu wants 3 streams
    rng = random.Random(6)  # hypotheses near a reference, so that every order has matches
    hyps = [
        [w if rng.random() < 0.8 else rng.choice(WORDS) for w in refs[0]] for refs in references
    ]
    streams = [[" ".join(refs[k]) for refs in references] for k in range(3)]
    ours = bleu(hyps, references)
    for n in range(1, 5):
        scorer = sacrebleu.BLEU(tokenize="none", max_ngram_order=n, smooth_method="none")
        theirs = scorer.corpus_score([" ".join(h) for h in hyps], streams).score / 100
        assert ours[n - 1] == pytest.approx(theirs, rel=1e-6)


def test_bleu_by_hand():
    # hypothesis "a b c d" against "a b c e" and "a x": precisions 3/4, 2/3, 1/2, 0/1; the
    # closest reference length is 4 (no brevity penalty).
    scores = bleu([["a", "b", "c", "d"]], [[["a", "b", "c", "e"], ["a", "x"]]])
    assert scores[0] == pytest.approx(0.75)
    assert scores[1] == pytest.approx(math.sqrt(0.75 * 2 / 3))
    assert scores[2] == pytest.approx((0.75 * 2 / 3 * 0.5) ** (1 / 3))
    assert scores[3] < 1e-3  # no 4-gram matches: only the COCO code's tiny smoothing is left
    # Too short: "a b" against "a b c e": brevity penalty exp(1 - 4/2).
    assert bleu([["a", "b"]], [[["a", "b", "c", "e"]]])[0] == pytest.approx(math.exp(-1))


def test_cider_d_rewards_the_consensus_and_penalises_length():
    references = [[["a", "red", "circle"], ["a", "red", "circle"]], [["a", "blue", "square"]] * 2]
    perfect = cider_d([["a", "red", "circle"], ["a", "blue", "square"]], references)
    wrong = cider_d([["a", "blue", "square"], ["a", "red", "circle"]], references)
    longer = cider_d(
        [["a", "red", "circle", "a", "red", "circle"], ["a", "blue", "square"]], references
    )
    assert perfect > longer > wrong
    gts, res = _coco([["a", "red", "circle"], ["a", "blue", "square"]], references)
    assert perfect == pytest.approx(Cider().compute_score(gts, res)[0], rel=1e-12)


def test_grounding_counts_the_most_attended_cell_against_its_object():
    # A 32-px image with a 4x4 grid of 8-px cells; a red circle in cell (row 0, col 0) and a blue
    # square covering cells (row 2..3, col 2..3).
    objects = [
        SceneObject("circle", "red", "small", (1, 1, 7, 7)),
        SceneObject("square", "blue", "large", (16, 16, 32, 32)),
    ]
    cells = np.zeros((4, 16))
    cells[0, 0] = 1.0  # "red": cell 0, on the circle: hit
    cells[1, 0] = 1.0  # "circle": cell 0 again: hit
    cells[2, 15] = 1.0  # "blue": cell 15 (row 3, col 3), on the square: hit
    cells[3, 0] = 1.0  # "square": cell 0, the circle: miss
    vocabulary = {"red": "colour", "blue": "colour", "circle": "shape", "square": "shape"}
    words = [["red", "circle", "blue", "square"]]
    result = grounding(words, [cells], [objects], image_size=32, vocabulary=vocabulary)
    assert result["words"] == 4 and result["hit_rate"] == pytest.approx(0.75)
    # chance: the circle overlaps 1 of 16 cells, the square 4 of 16
    assert result["chance"] == pytest.approx((1 + 1 + 4 + 4) / 16 / 4)
    assert result["area"] == pytest.approx((36 + 36 + 256 + 256) / 1024 / 4)
    # A word naming nothing in the picture is a miss, with zero chance.
    other = grounding(
        [["green"]], [cells[:1]], [objects], image_size=32, vocabulary={"green": "colour"}
    )
    assert other["hit_rate"] == 0.0 and other["chance"] == 0.0
    nothing = grounding([["a"]], [cells[:1]], [objects], image_size=32, vocabulary=vocabulary)
    assert nothing == {"words": 0, "hit_rate": None, "chance": None, "area": None}


def test_metrics_refuse_mismatched_inputs():
    with pytest.raises(ValueError, match="one hypothesis per image"):
        bleu([["a"]], [])
    with pytest.raises(ValueError, match="at least one reference"):
        cider_d([["a"]], [[]])


def test_the_relation_scores_count_directions_of_objects_named_right():
    from rnnkit.caption.api import _scores
    from rnnkit.caption.data import Split

    circle = SceneObject("circle", "red", "small", (2, 20, 12, 30))
    square = SceneObject("square", "blue", "large", (40, 18, 60, 38))
    lone = SceneObject("triangle", "green", "small", (20, 20, 30, 30))
    hyps = [
        "a red circle left of a blue square",  # true
        "a blue square left of a red circle",  # both named right, the direction wrong
        "a green circle left of a blue square",  # an object named wrong: not counted
        "a red circle and a blue square",  # no relation stated
        "a green triangle",  # one object: not in the relations subset
    ]
    objects = [[circle, square]] * 4 + [[lone]]
    refs = [["a red circle left of a blue square".split()]] * 4 + [["a green triangle".split()]]
    split = Split(np.zeros((5, 8, 8, 3), np.uint8), [str(i) for i in range(5)], refs, objects)
    relations = _scores([h.split() for h in hyps], split, None, 64)["subsets"]["relations"]
    assert relations["images"] == 4 and relations["relations_named"] == 2
    assert relations["relation_right"] == 0.25 and relations["direction_right"] == 0.5
