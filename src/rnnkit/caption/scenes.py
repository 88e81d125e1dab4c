"""``synth-scenes``: small pictures of coloured shapes with captions, made from a seed.

Each image (``size`` px square, light background) holds 1-3 objects; an object is a shape
(circle, square, triangle) of a colour (red, green, blue, yellow) and a size (small, large) at a
position. Each image gets 3-5 reference captions from a small grammar with paraphrases and, for
two or more objects, a spatial relation ("a small red circle left of a large blue square", "a
large blue square to the right of a small red circle", "a red circle above a blue square", ...).
The object boxes are kept, for the grounding metric.

**Held-out compositions.** Some colour-shape pairs (``HELD_OUT_PAIRS``) and some arrangements of
two shapes (``HELD_OUT_ARRANGEMENTS``, e.g. a triangle left of a circle, however it is phrased)
never occur in the training images; every validation and test image holds at least one of them.
The test therefore measures whether a model composes words it knows in new ways, not memory.

Torch-free (Pillow + NumPy). ``load_scenes`` caches a generated set under the user's cache
directory, keyed by everything that determines it.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit.data.datasets import cache_dir
from rnnkit.errors import ConfigError
from rnnkit.files import atomic_path

logger = logging.getLogger(__name__)

NAME = "synth-scenes"
GENERATOR_VERSION = 1  # bump when the images or captions of a seed change
SHAPES = ("circle", "square", "triangle")
COLOURS = ("red", "green", "blue", "yellow")
SIZES = ("small", "large")
RGB = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 70, 220),
    "yellow": (230, 200, 20),
}
RELATION_WORDS = ("left", "right", "above", "below")
RELATIONS = ("left of", "right of", "above", "below")
# Colour-shape pairs that no training image shows.
HELD_OUT_PAIRS = frozenset({("red", "square"), ("blue", "circle"), ("yellow", "triangle")})
# (shape, relation, shape) arrangements that no training image shows, in canonical form: the
# first shape is the left one (relation "left of") or the upper one ("above").
HELD_OUT_ARRANGEMENTS = frozenset(
    {("triangle", "left of", "circle"), ("square", "above", "triangle")}
)
SPLIT_SEEDS = {"train": 0, "valid": 1, "test": 2}  # added to the user's seed


@dataclass(frozen=True)
class SceneObject:
    """One object of a scene; ``box`` is ``(x0, y0, x1, y1)`` in pixels, x1/y1 exclusive."""

    shape: str
    colour: str
    size: str
    box: tuple[int, int, int, int]

    def phrase(self, with_size: bool = True) -> str:
        """``"a small red circle"`` (or without the size)."""
        words = [self.size] if with_size else []
        return " ".join(["a", *words, self.colour, self.shape])

    def centre(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return (x0 + x1) / 2, (y0 + y1) / 2


@dataclass
class Scenes:
    """A generated split: images ``(N, size, size, 3)`` uint8; per image, objects and captions."""

    images: np.ndarray
    objects: list[list[SceneObject]]
    captions: list[list[str]]


def relation(a: SceneObject, b: SceneObject) -> str:
    """Where ``a`` is relative to ``b``: "left of", "right of", "above" or "below"."""
    (ax, ay), (bx, by) = a.centre(), b.centre()
    if abs(ax - bx) >= abs(ay - by):
        return "left of" if ax < bx else "right of"
    return "above" if ay < by else "below"


def arrangement(a: SceneObject, b: SceneObject) -> tuple[str, str, str]:
    """The canonical ``(shape, relation, shape)`` of a pair: left one first, or upper one first."""
    rel = relation(a, b)
    if rel in ("right of", "below"):
        a, b = b, a
        rel = "left of" if rel == "right of" else "above"
    return (a.shape, rel, b.shape)


def relation_named(
    words: list[str], objects: list[SceneObject]
) -> tuple[str, SceneObject, SceneObject] | None:
    """The relation a caption states between two objects of the scene, ``(relation, X, Y)`` for
    "X <relation> Y" with X and Y two different objects named right (colour and shape); None when
    the caption states no relation or names either object wrong. The relation may be false."""
    text = " ".join(words)
    for rel in RELATIONS:
        k = text.find(rel)
        if k < 0:
            continue
        before, after = text[:k].split(), text[k + len(rel) :].split()
        first = [w for w in before if w in COLOURS][-1:], [w for w in before if w in SHAPES][-1:]
        second = [w for w in after if w in COLOURS][:1], [w for w in after if w in SHAPES][:1]
        named = [
            [o for o in objects if ([o.colour], [o.shape]) == phrase] for phrase in (first, second)
        ]
        if all(named) and named[0][0] is not named[1][0]:
            return rel, named[0][0], named[1][0]
        return None
    return None


def relation_right(words: list[str], objects: list[SceneObject]) -> bool:
    """Whether a caption states a true relation: "X <relation> Y" with X and Y objects of the
    scene (named by colour and shape) and the relation where X is relative to Y."""
    named = relation_named(words, objects)
    return named is not None and relation(named[1], named[2]) == named[0]


def held_out_parts(objects: list[SceneObject]) -> list[tuple[str, ...]]:
    """The held-out pairs and arrangements that occur in a scene (empty: a training scene)."""
    parts: list[tuple[str, ...]] = [
        (o.colour, o.shape) for o in objects if (o.colour, o.shape) in HELD_OUT_PAIRS
    ]
    for i, a in enumerate(objects):
        for b in objects[i + 1 :]:
            if arrangement(a, b) in HELD_OUT_ARRANGEMENTS:
                parts.append(arrangement(a, b))
    return parts


def captions_for(objects: list[SceneObject], rng: random.Random) -> list[str]:
    """3-5 reference captions of a scene, paraphrases drawn from the grammar."""
    if len(objects) == 1:
        (o,) = objects
        options = [
            o.phrase(),
            o.phrase(with_size=False),
            f"there is {o.phrase()}",
            f"{o.phrase()} on a white background",
            f"a picture of {o.phrase()}",
            f"a single {o.phrase()[2:]}",
        ]
    else:
        ordered = sorted(objects, key=lambda o: o.centre()[0])  # left to right
        a, b = ordered[0], ordered[1]
        rel, inverse = relation(a, b), relation(b, a)
        rel_to = {"left of": "to the left of", "right of": "to the right of"}
        options = [
            f"{a.phrase()} {rel} {b.phrase()}",
            f"{b.phrase()} {rel_to.get(inverse, inverse)} {a.phrase()}",
            f"{a.phrase(False)} {rel_to.get(rel, rel)} {b.phrase(False)}",
            f"{b.phrase(False)} {inverse} {a.phrase(False)}",
        ]
        if len(objects) == 2:
            options.append(f"{a.phrase()} and {b.phrase()}")
        else:  # the relation of the two leftmost objects, then the third one
            c = ordered[2]
            options = [f"{text} and {c.phrase(False)}" for text in options]
            listing = f"{a.phrase()} , {b.phrase()} and {c.phrase()}"
            options += [listing, f"three shapes : {listing}"]
    count = rng.randint(3, min(5, len(options)))
    return rng.sample(options, count)


def _place(count: int, size: int, rng: random.Random) -> list[SceneObject] | None:
    """Random objects, told apart by colour and shape, apart, in unambiguous relations."""
    objects: list[SceneObject] = []
    for _ in range(count):
        obj_size = rng.choice(SIZES)
        half = round(size * (0.09 if obj_size == "small" else 0.16))
        cx = rng.randint(half + 1, size - half - 2)
        cy = rng.randint(half + 1, size - half - 2)
        box = (cx - half, cy - half, cx + half + 1, cy + half + 1)
        obj = SceneObject(rng.choice(SHAPES), rng.choice(COLOURS), obj_size, box)
        for other in objects:
            if (other.colour, other.shape) == (obj.colour, obj.shape):
                return None  # two objects one phrase names: the captions would be ambiguous
            gap = 2
            if not (
                box[2] + gap <= other.box[0]
                or other.box[2] + gap <= box[0]
                or box[3] + gap <= other.box[1]
                or other.box[3] + gap <= box[1]
            ):
                return None  # overlapping
            (ax, ay), (bx, by) = obj.centre(), other.centre()
            dx, dy = abs(ax - bx), abs(ay - by)
            if max(dx, dy) < 1.5 * min(dx, dy) + 2:
                return None  # diagonal: "left of" or "above" would both be fair
        objects.append(obj)
    return objects


def draw(objects: list[SceneObject], size: int, rng: random.Random) -> np.ndarray:
    """The picture of ``objects`` as a ``(size, size, 3)`` uint8 array."""
    from PIL import Image, ImageDraw

    grey = rng.randint(225, 255)
    image = Image.new("RGB", (size, size), (grey, grey, grey))
    pen = ImageDraw.Draw(image)
    for o in objects:
        colour = tuple(min(255, max(0, c + rng.randint(-20, 20))) for c in RGB[o.colour])
        x0, y0, x1, y1 = o.box
        corners = (x0, y0, x1 - 1, y1 - 1)
        if o.shape == "circle":
            pen.ellipse(corners, fill=colour)
        elif o.shape == "square":
            pen.rectangle(corners, fill=colour)
        else:
            pen.polygon([((x0 + x1 - 1) / 2, y0), (x0, y1 - 1), (x1 - 1, y1 - 1)], fill=colour)
    return np.asarray(image, dtype=np.uint8)


def generate(split: str, count: int, *, seed: int = 0, size: int = 64) -> Scenes:
    """``count`` scenes of ``split`` ("train", "valid" or "test"), the same for the same arguments.

    Training scenes hold no held-out composition; validation and test scenes hold at least one.
    """
    if split not in SPLIT_SEEDS:
        raise ConfigError(f"split must be train, valid or test, got {split!r}")
    if count < 1 or size < 32:
        raise ConfigError(f"need count >= 1 and size >= 32, got count={count}, size={size}")
    rng = random.Random(f"{NAME}/{seed + SPLIT_SEEDS[split]}")
    images, objects_out, captions = [], [], []
    while len(images) < count:
        objects = _place(rng.choice((1, 2, 2, 3)), size, rng)
        if objects is None:
            continue
        if bool(held_out_parts(objects)) != (split != "train"):
            continue
        images.append(draw(objects, size, rng))
        objects_out.append(objects)
        captions.append(captions_for(objects, rng))
    return Scenes(np.stack(images), objects_out, captions)


def cache_path(split: str, count: int, seed: int, size: int) -> Path:
    """Where a generated split is cached."""
    return (
        cache_dir()
        / "caption"
        / f"{NAME}-v{GENERATOR_VERSION}-{split}-n{count}-s{seed}-{size}px.npz"
    )


def load_scenes(split: str, count: int, *, seed: int = 0, size: int = 64) -> Scenes:
    """:func:`generate`'s scenes, read from the cache or generated once and cached."""
    path = cache_path(split, count, seed, size)
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as stored:
                meta = json.loads(bytes(stored["meta"]).decode("utf-8"))
                return Scenes(stored["images"], _objects_from(meta["objects"]), meta["captions"])
        except (OSError, ValueError, KeyError) as exc:
            logger.warning("regenerating %s: the cached file is damaged (%s)", path, exc)
    scenes = generate(split, count, seed=seed, size=size)
    meta = {"objects": [[_object_dict(o) for o in objs] for objs in scenes.objects]}
    meta["captions"] = scenes.captions
    raw = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, images=scenes.images, meta=raw)
    logger.info("cached %d %s scenes at %s", count, split, path)
    return scenes


def _object_dict(o: SceneObject) -> dict[str, Any]:
    return {"shape": o.shape, "colour": o.colour, "size": o.size, "box": list(o.box)}


def _objects_from(data: list[list[dict[str, Any]]]) -> list[list[SceneObject]]:
    return [
        [SceneObject(d["shape"], d["colour"], d["size"], tuple(d["box"])) for d in objs]
        for objs in data
    ]
