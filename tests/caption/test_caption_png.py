"""Big pictures in bounded memory: the streaming PNG decoder against Pillow on every colour type,
bit depth and row filter; a PNG beyond Pillow's limit read in bounded memory; other formats
capped by this machine's memory (docs/captioning.md, "Bad input")."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from png_writer import write_png

from rnnkit import limits
from rnnkit.caption import images, png
from rnnkit.errors import DataError

KINDS = [  # (colour type, bit depth, palette transparency)
    (0, 1, False), (0, 2, False), (0, 4, False), (0, 8, False),
    (3, 1, False), (3, 2, False), (3, 4, True), (3, 8, False), (3, 8, True),
    (4, 8, False), (2, 8, False), (6, 8, False),
]  # fmt: skip
FILTERS = [(0,), (1,), (2,), (3,), (4,), (4, 3, 2, 1, 0)]


def random_png(path, colour, depth, alpha, filters, *, width=37, height=23, seed=0):
    rng = np.random.default_rng(seed)
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    pixels = rng.integers(0, 2**depth, size=(height, width * channels))
    entries = 2**depth
    palette = rng.integers(0, 256, size=(entries, 3)) if colour == 3 else None
    alphas = rng.integers(0, 256, size=entries - 1) if alpha else None  # one entry left opaque
    return write_png(path, width, height, lambda y: pixels[y], colour=colour, depth=depth,
                     filters=filters, palette=palette, transparency=alphas)  # fmt: skip


def pillow_reduced(path, fx, fy):
    """The oracle: Pillow decodes the whole picture, rnnkit's RGB rule, Pillow's box reduce."""
    with Image.open(path) as image:
        image.load()
        rgb = images._to_rgb(image)
    return np.asarray(rgb.reduce((fx, fy)) if (fx, fy) != (1, 1) else rgb, dtype=np.int16)


@pytest.mark.parametrize("filters", FILTERS)
@pytest.mark.parametrize(("colour", "depth", "alpha"), KINDS)
def test_streamed_rows_equal_pillows_decoding(tmp_path, monkeypatch, colour, depth, alpha, filters):
    path = random_png(tmp_path / "p.png", colour, depth, alpha, filters)
    monkeypatch.setattr(png, "STRIP_BYTES", 40)  # many strips: each starts from the last row
    for fx, fy in ((1, 1), (4, 3), (37, 23)):
        ours = png.read_reduced(path, fx, fy).astype(np.int16)
        expected = pillow_reduced(path, fx, fy)
        assert ours.shape == expected.shape
        # Equal but for rounding: Pillow rounds after laying alpha over white and again after
        # reducing (its own way, halves included); we round once.
        exact = (fx, fy) == (1, 1) and not alpha and colour not in (4, 6)
        assert np.abs(ours - expected).max() <= (0 if exact else 1)


def test_a_streamed_png_stands_upright_like_a_decoded_one(tmp_path, monkeypatch):
    exif = Image.Exif()
    exif[png.ORIENTATION] = 6  # the camera was turned: rotate 270 degrees to stand it up
    pixels = np.zeros((40, 64 * 3), np.uint8)
    pixels[:10, :30] = 255  # a white corner
    path = write_png(tmp_path / "turned.png", 64, 40, lambda y: pixels[y], colour=2,
                     exif=exif.tobytes())  # fmt: skip
    whole = images.load_image(path, 32)
    monkeypatch.setattr(images, "STREAM_PIXELS", 0)
    streamed = images.load_image(path, 32)
    assert streamed.shape == whole.shape == (32, 32, 3)
    assert np.abs(streamed.astype(int) - whole.astype(int)).mean() < 2
    assert whole[2, -2].min() > 200 and whole[-2, 2].max() < 50  # the corner moved top right


HUGE = 14_000  # 196 megapixels: above Pillow's refusal threshold (2 x 89.5 megapixels)


def test_an_enormous_png_is_downscaled_in_bounded_memory(tmp_path):
    # Three vertical bands (palette entries 1, 2, 3) and a black bottom quarter: 196 MB of
    # pixels that compress to a small file.
    bands = np.repeat(np.array([1, 2, 3], np.uint8), [HUGE // 3, HUGE // 3, HUGE - 2 * (HUGE // 3)])
    black = np.zeros(HUGE, np.uint8)
    palette = [(0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255)]
    path = write_png(tmp_path / "huge.png", HUGE, HUGE,
                     lambda y: bands if y < 3 * HUGE // 4 else black, colour=3,
                     palette=palette, level=1)  # fmt: skip
    assert path.stat().st_size < 2_000_000
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)  # what Pillow alone does with it
    script = (
        "import sys, numpy as np\n"
        "from rnnkit.caption.images import load_image\n"
        "image = load_image(sys.argv[1], 48)\n"
        "np.save(sys.argv[2], image)\n"
        # The peak resident memory of this process since it started (ru_maxrss would count the
        # forked pytest process it replaced).
        "peak = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
        "print(int(peak.split()[1]) * 1024)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path), str(tmp_path / "out.npy")],
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr
    peak = int(done.stdout.split()[-1])
    assert peak < 300 * 1024**2  # decoded whole: 196 MB of palette indices, then 784 MB as RGB
    image = np.load(tmp_path / "out.npy")
    assert image.shape == (48, 48, 3)
    for column, colour in ((8, 0), (24, 1), (40, 2)):
        pixel = image[12, column]
        assert pixel[colour] > 240 and np.delete(pixel, colour).max() < 15
    assert image[44].max() < 15  # the black quarter


def test_other_pictures_are_decoded_whole_up_to_a_cap_from_the_machines_memory(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(limits, "physical_memory", lambda: 64 * 1024**2)  # cap: 1 megapixel
    assert limits.image_pixel_cap() == 1024**2
    big = np.full((1100, 1000, 3), 128, np.uint8)
    Image.fromarray(big).save(tmp_path / "big.bmp")
    with pytest.raises(DataError) as refused:
        images.load_image(tmp_path / "big.bmp", 32)
    message = str(refused.value)
    assert "1,000x1,100 pixels" in message and "a BMP is decoded whole" in message
    assert "allows 1 megapixels" in message
    # The same picture as a PNG streams; as an interlaced PNG it is refused the same way.
    rows = big.reshape(1100, -1)
    write_png(tmp_path / "big.png", 1000, 1100, lambda y: rows[y], colour=2)
    assert images.load_image(tmp_path / "big.png", 32).mean() == pytest.approx(128, abs=1)
    write_png(tmp_path / "laced.png", 1000, 1100, lambda y: rows[y], colour=2, interlace=1)
    with pytest.raises(DataError, match="an interlaced PNG is decoded whole"):
        images.load_image(tmp_path / "laced.png", 32)
    small = Image.fromarray(big[:100, :100])
    small.save(tmp_path / "small.bmp")
    assert images.load_image(tmp_path / "small.bmp", 32).shape == (32, 32, 3)


def test_damaged_pngs_are_one_line(tmp_path, monkeypatch):
    path = random_png(tmp_path / "p.png", 2, 8, False, (4,), width=300, height=200)
    data = path.read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    monkeypatch.setattr(images, "STREAM_PIXELS", 0)
    with pytest.raises(DataError, match=r"cut.png is damaged or truncated"):
        images.load_image(tmp_path / "cut.png", 32)
    os.mkfifo(tmp_path / "pipe.png")  # no writer: opening it would wait forever
    with pytest.raises(DataError, match="pipe.png is not a regular file"):
        images.load_image(tmp_path / "pipe.png", 32)


def test_pillow_limit_is_switched_off_by_one_opener_at_a_time():
    """Pillow's pixel limit is a global: a second thread opening a picture waits for the first,
    and the limit is back as it was when both are done (the playground opens from threads)."""
    import threading

    original = Image.MAX_IMAGE_PIXELS
    entered, release, second_done = threading.Event(), threading.Event(), threading.Event()

    def first():
        with images._memory_cap_instead_of_pillows():
            entered.set()
            release.wait(10)

    def second():
        with images._memory_cap_instead_of_pillows():
            pass
        second_done.set()

    one = threading.Thread(target=first)
    one.start()
    assert entered.wait(10)
    two = threading.Thread(target=second)
    two.start()
    assert not second_done.wait(0.3)  # waits while the first holds the limit off
    release.set()
    one.join(10)
    two.join(10)
    assert second_done.is_set()
    assert Image.MAX_IMAGE_PIXELS == original
