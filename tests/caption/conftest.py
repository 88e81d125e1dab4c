"""Shared fixtures of the captioning tests: a private cache, tiny scenes, a tiny trained run."""

import pytest
import torch

from rnnkit.caption.recipe import CaptionRecipe

# A recipe small enough to train in a few seconds: 32-px images (a 4x4 grid), tiny layers.
TINY = dict(
    scenes=(48, 12, 12), image_size=32, channels=8, feature_size=16, embedding_dim=16,
    hidden_size=32, attention_size=16, batch_size=16, max_length=12, warmup_steps=0,
    eval_every=0, max_minutes=None,
)  # fmt: skip


def tiny_recipe(**changes) -> CaptionRecipe:
    return CaptionRecipe(**{**TINY, "max_steps": 3, **changes})


@pytest.fixture
def recipe():
    """``recipe(**changes)``: the tiny recipe with changes."""
    return tiny_recipe


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Synthetic scenes are cached in a folder of the test session, never the user's; one
    thread (tiny models run faster without threads on a busy machine)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A caption run (attention decoder) trained for a few steps on tiny synthetic scenes."""
    from rnnkit.caption.api import train

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))
        out = tmp_path_factory.mktemp("run") / "cap"
        train(out, recipe=tiny_recipe(max_steps=6))
    return out
