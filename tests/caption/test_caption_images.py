"""Reading pictures: every mode to RGB, EXIF orientation, enormous JPEGs decoded small, errors."""

import numpy as np
import pytest
from PIL import Image

from rnnkit.caption.images import load_image, open_reduced
from rnnkit.errors import DataError


def test_transparency_is_laid_over_white_and_modes_become_rgb(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:, :4] = (200, 10, 10, 255)  # opaque red on the left, fully transparent on the right
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    out = load_image(tmp_path / "rgba.png", 8)
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    assert (out[:, :4] == (200, 10, 10)).all() and (out[:, 4:] == 255).all()

    Image.fromarray(np.full((8, 8), 77, np.uint8), "L").save(tmp_path / "grey.png")
    assert (load_image(tmp_path / "grey.png", 8) == 77).all()

    palette = Image.new("P", (8, 8))
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    palette.paste(1, (0, 0, 8, 8))
    palette.save(tmp_path / "palette.png")
    assert (load_image(tmp_path / "palette.png", 8) == (10, 200, 30)).all()

    deep = Image.fromarray(np.full((8, 8), 65535, np.uint16))  # 16-bit greyscale, white
    deep.save(tmp_path / "deep.png")
    assert (load_image(tmp_path / "deep.png", 8) == 255).all()


def test_exif_orientation_stands_the_picture_upright(tmp_path):
    pixels = np.zeros((20, 40, 3), np.uint8)  # 40 wide, 20 high: red left half, blue right half
    pixels[:, :20] = (255, 0, 0)
    pixels[:, 20:] = (0, 0, 255)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    image.save(tmp_path / "phone.png", exif=exif)
    upright = np.asarray(open_reduced(tmp_path / "phone.png", 16))
    assert upright.shape == (40, 20, 3)  # now 20 wide, 40 high; the left half went to the top
    assert (upright[:20] == (255, 0, 0)).all() and (upright[20:] == (0, 0, 255)).all()


def test_an_enormous_jpeg_is_decoded_at_a_fraction_of_its_size(tmp_path):
    Image.new("RGB", (4000, 3000), (30, 60, 90)).save(tmp_path / "huge.jpg", quality=80)
    decoded = open_reduced(tmp_path / "huge.jpg", 64)
    assert decoded.size == (500, 375)  # decoded at 1/8 scale: never 12 megapixels in memory
    out = load_image(tmp_path / "huge.jpg", 64)
    assert out.shape == (64, 64, 3) and np.abs(out.astype(int) - (30, 60, 90)).max() <= 3


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.png", None, "no such image file"),
        ("empty.png", b"", r"empty \(0 bytes\)"),
        ("notes.png", b"just some text, not a picture\n", "not an image"),
    ],
)
def test_unusable_files_give_one_line_naming_them(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        load_image(path, 32)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_truncated_image_is_reported_as_damaged(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(
        tmp_path / "full.png"
    )
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="damaged or truncated"):
        load_image(tmp_path / "cut.png", 32)
    with pytest.raises(DataError, match="is a directory"):
        load_image(tmp_path, 32)
