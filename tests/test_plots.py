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


def test_loss_curves_name_the_task_unit_and_span_decades_on_a_log_axis(tmp_path):
    from rnnkit.plots import plot_losses

    falling = [{"step": s, "split": "train", "loss": 4.0 / s} for s in range(1, 2001, 50)]
    falling.append({"step": 2000, "split": "valid", "loss": 0.003})
    fig = plot_losses(falling, tmp_path / "a.png", unit="nats/character")
    (ax,) = fig.axes
    assert ax.get_ylabel() == "loss (nats/character)" and ax.get_yscale() == "log"
    flat = [{"step": s, "split": "train", "loss": 1.0 + 1 / s} for s in range(1, 50)]
    assert plot_losses(flat, tmp_path / "b.png").axes[0].get_yscale() == "linear"
    negative = [{"step": s, "split": "train", "loss": v} for s, v in ((1, 5.0), (2, -0.5))]
    assert plot_losses(negative, tmp_path / "c.png").axes[0].get_yscale() == "linear"
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("lines", [3, 7])
def test_a_crowded_series_figure_keeps_its_legend_off_the_curves(tmp_path, lines):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from rnnkit.plots import plot_series

    series = {f"run {i}": ([0, 1000, 2000], [6.0, 5.0 + i / 10, 6.5]) for i in range(lines)}
    fig = plot_series(series, tmp_path / "s.png", xlabel="steps", ylabel="loss")
    renderer = FigureCanvasAgg(fig).get_renderer()
    (ax,) = fig.axes
    legend = ax.get_legend().get_window_extent(renderer)
    axes = ax.get_window_extent(renderer)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(series)
    if lines > 4:  # beside the axes, not over the lines
        assert legend.x0 >= axes.x1
    else:  # inside, where matplotlib finds room
        assert axes.x0 <= legend.x0 and legend.x1 <= axes.x1
    assert Image.open(tmp_path / "s.png").size[0] == (850 if lines > 4 else 600)
