"""``rnnkit.plots``: figures are marked as rnnkit's, and the one overwrite rule for images."""

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from rnnkit.errors import DataError
from rnnkit.plots import check_image_output, looks_like_image, save_figure


def figure():
    fig = Figure(figsize=(2, 2), dpi=50)
    fig.add_subplot().plot([0, 1], [1, 0])
    return fig


@pytest.mark.parametrize("suffix", [".png", ".pdf", ".svg", ""])
def test_figures_rnnkit_draws_are_recognised_and_pictures_of_the_user_are_not(tmp_path, suffix):
    ours = save_figure(figure(), tmp_path / f"fig{suffix}")
    assert looks_like_image(ours)
    assert check_image_output(ours) == ours  # replaced without --force
    photo = tmp_path / f"photo{suffix or '.png'}"
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(photo, format="PNG")
    assert not looks_like_image(photo)  # a PNG, but not one rnnkit drew
    # A figure drawn by matplotlib elsewhere (its own metadata) is not rnnkit's either.
    figure().savefig(tmp_path / "other.png")
    assert not looks_like_image(tmp_path / "other.png")


def test_the_overwrite_rule_for_images(tmp_path):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(photo)
    before = photo.read_bytes()
    with pytest.raises(DataError, match=r"^--plot .*photo.png exists and is not an rnnkit image"):
        check_image_output(photo, option="--plot")
    with pytest.raises(DataError, match="is also an input of this command"):
        check_image_output(photo, inputs=[photo], force=True)
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    with pytest.raises(DataError, match="inside the run directory"):
        check_image_output(run / "new.png", force=True)
    assert photo.read_bytes() == before
    assert check_image_output(photo, force=True) == photo


def test_a_figure_name_matplotlib_cannot_write_is_refused_before_the_work(tmp_path):
    # `--plot forecast.txt` used to fail with matplotlib's traceback after the forecast was made.
    with pytest.raises(DataError, match=r"^--plot .*out.txt: cannot draw a .txt figure"):
        check_image_output(tmp_path / "out.txt", option="--plot")
    with pytest.raises(DataError, match=r"the folder .*nodir does not exist"):
        check_image_output(tmp_path / "nodir" / "x.png", option="--plot")
    for name in ("a.png", "a.PDF", "a.svg", "a.jpg", "noext"):
        assert check_image_output(tmp_path / name) == tmp_path / name
