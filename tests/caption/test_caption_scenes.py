"""The synthetic scenes: deterministic, captions true to the pictures, compositions held out."""

import numpy as np
import pytest

from rnnkit.caption import scenes
from rnnkit.caption.data import tokenize


def _centre(box):
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def test_same_seed_same_scenes_and_another_seed_others():
    a = scenes.generate("train", 20, seed=3)
    b = scenes.generate("train", 20, seed=3)
    c = scenes.generate("train", 20, seed=4)
    assert np.array_equal(a.images, b.images) and a.captions == b.captions
    assert not np.array_equal(a.images, c.images)


def test_training_scenes_never_show_a_held_out_composition():
    train = scenes.generate("train", 400)
    for objects, captions in zip(train.objects, train.captions):
        for o in objects:
            assert (o.colour, o.shape) not in scenes.HELD_OUT_PAIRS
        for text in captions:  # whatever the phrasing, no caption names a held-out pair
            words = tokenize(text)
            for colour, shape in scenes.HELD_OUT_PAIRS:
                pairs = set(zip(words, words[1:])) | set(zip(words, words[2:]))
                assert (colour, shape) not in {(a, b) for a, b in pairs if b in scenes.SHAPES}
        # Geometry of every pair, checked from the boxes (not through the module's code).
        for i, a in enumerate(objects):
            for b in objects[i + 1 :]:
                (ax, ay), (bx, by) = _centre(a.box), _centre(b.box)
                if abs(ax - bx) >= abs(ay - by):
                    left, right = (a, b) if ax < bx else (b, a)
                    assert (left.shape, "left of", right.shape) not in scenes.HELD_OUT_ARRANGEMENTS
                else:
                    top, bottom = (a, b) if ay < by else (b, a)
                    assert (top.shape, "above", bottom.shape) not in scenes.HELD_OUT_ARRANGEMENTS


@pytest.mark.parametrize("split", ["valid", "test"])
def test_every_held_out_scene_shows_a_new_composition(split):
    held = scenes.generate(split, 200)
    seen_pairs, seen_arrangements = set(), set()
    for objects in held.objects:
        parts = scenes.held_out_parts(objects)
        assert parts
        seen_pairs |= {p for p in parts if len(p) == 2}
        seen_arrangements |= {p for p in parts if len(p) == 3}
    assert seen_pairs == set(scenes.HELD_OUT_PAIRS)  # all of them are tested
    assert seen_arrangements == set(scenes.HELD_OUT_ARRANGEMENTS)


def test_captions_say_what_the_picture_shows():
    made = scenes.generate("test", 150, size=64)
    relations = {"left": 0, "right": 0, "above": 0, "below": 0}
    for image, objects, captions in zip(made.images, made.objects, made.captions):
        assert 3 <= len(captions) <= 5 and len(set(captions)) == len(captions)
        for o in objects:  # the box holds the object's colour at its centre
            x, y = (int(v) for v in _centre(o.box))
            expected = np.array(scenes.RGB[o.colour])
            assert np.abs(image[min(y, o.box[3] - 2), x].astype(int) - expected).max() <= 25
        for text in captions:
            words = tokenize(text)
            assert {o.shape for o in objects} <= set(words)
            for word, other in (("left", "right"), ("above", "below")):
                if word not in words and other not in words:
                    continue
                relations[word if word in words else other] += 1
                # "X <rel> Y": the first object phrase is where the relation says, in the boxes.
                cut = next(i for i, w in enumerate(words) if w in (word, other))
                first = [w for w in words[:cut] if w in scenes.SHAPES + scenes.COLOURS]
                second = [w for w in words[cut:] if w in scenes.SHAPES + scenes.COLOURS]
                a = next(o for o in objects if [o.colour, o.shape] == first[-2:])
                b = next(o for o in objects if [o.colour, o.shape] == second[:2])
                (ax, ay), (bx, by) = _centre(a.box), _centre(b.box)
                if "left" in words:
                    assert ax < bx
                elif "right" in words:
                    assert ax > bx
                elif "above" in words:
                    assert ay < by
                else:
                    assert ay > by
    assert min(relations.values()) > 0


def test_cached_scenes_are_read_back_unchanged():
    first = scenes.load_scenes("valid", 10, seed=1, size=32)
    path = scenes.cache_path("valid", 10, 1, 32)
    assert path.is_file()
    again = scenes.load_scenes("valid", 10, seed=1, size=32)
    assert np.array_equal(first.images, again.images)
    assert first.captions == again.captions and first.objects == again.objects
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


def test_relation_right_checks_the_named_objects_and_the_direction():
    left = scenes.SceneObject("circle", "red", "small", (2, 20, 12, 30))
    right = scenes.SceneObject("square", "blue", "large", (40, 18, 60, 38))
    scene = [left, right]
    for caption, right_or_wrong in [
        ("a small red circle left of a large blue square", True),
        ("a blue square to the right of a red circle", True),
        ("a red circle right of a blue square", False),  # the direction is wrong
        ("a red circle above a blue square", False),  # the axis is wrong
        ("a green circle left of a blue square", False),  # no green circle here
        ("a red circle left of a red circle", False),  # one object twice
        ("a red circle and a blue square", False),  # no relation stated
    ]:
        assert scenes.relation_right(caption.split(), scene) is right_or_wrong, caption
    # relation_named: the stated relation between two objects named right, true or not
    assert scenes.relation_named("a red circle right of a blue square".split(), scene) == (
        "right of",
        left,
        right,
    )
    assert scenes.relation_named("a blue square to the right of a red circle".split(), scene) == (
        "right of",
        right,
        left,
    )
    for caption in ("a green circle left of a blue square", "a red circle left of a red circle",
                    "a red circle and a blue square"):  # fmt: skip
        assert scenes.relation_named(caption.split(), scene) is None, caption
    # every reference caption of generated scenes that states a relation states a true one
    made = scenes.generate("valid", 40, seed=3)
    for objects, captions in zip(made.objects, made.captions):
        for c in captions:
            if any(r in c for r in ("left of", "right of", "above", "below")):
                assert scenes.relation_right(c.split(), objects), c
