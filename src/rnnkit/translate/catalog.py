"""The default corpus: git's own message catalog for a locale, found on the system or fetched
(Debian's ``git`` package through ``apt-get download``) into the user's cache directory."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from rnnkit.data import datasets
from rnnkit.errors import ConfigError, DownloadError

logger = logging.getLogger(__name__)


def default_catalog(
    lang: str = "fr",
    *,
    locale_dir: str | Path = "/usr/share/locale",
    cache_dir: str | Path | None = None,
) -> Path:
    """Path of git's message catalog ``git.mo`` for locale ``lang`` (e.g. ``fr``, ``zh_CN``).

    Looks in ``locale_dir`` (the system's), then in ``cache_dir`` (default:
    ``~/.cache/rnnkit/git-locale``). If neither holds any git catalog, downloads Debian's ``git``
    package there with ``apt-get download git`` and extracts it with ``dpkg-deb -x``.

    Raises:
        ConfigError: ``lang`` is not a locale name.
        DownloadError: there is no catalog for ``lang`` (the message lists those there are), or
            none could be fetched.
    """
    if not re.fullmatch(r"[A-Za-z]{2,3}(?:_[A-Za-z]{2})?(?:@\w+)?", lang):
        raise ConfigError(f"lang={lang!r} is not a locale name; pass e.g. 'fr', 'de' or 'zh_CN'")
    cache = Path(cache_dir) if cache_dir is not None else datasets.cache_dir() / "git-locale"
    roots = (Path(locale_dir), cache / "usr/share/locale")
    found: dict[str, Path] = {}
    for root in reversed(roots):  # the system's catalogs win
        found.update((p.parent.parent.name, p) for p in root.glob("*/LC_MESSAGES/git.mo"))
    if not found:
        _fetch_git_package(cache)
        found = {p.parent.parent.name: p for p in roots[1].glob("*/LC_MESSAGES/git.mo")}
    if lang not in found:
        raise DownloadError(
            f"git has no message catalog for lang={lang!r}; available: "
            f"{', '.join(sorted(found)) or 'none'}; or pass --data FILE.tsv|FILE.mo|FILE.po"
        )
    return found[lang]


def _fetch_git_package(cache: Path) -> None:
    """Download Debian's git package with apt-get and unpack it under ``cache``."""
    hint = (
        "git's catalogs are not installed and could not be fetched with "
        "'apt-get download git' + 'dpkg-deb -x' ({}); install git's locale files "
        "(e.g. 'apt-get install git') or pass --data FILE.tsv|FILE.mo|FILE.po"
    )
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise DownloadError(hint.format("apt-get or dpkg-deb is not available"))
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        logger.info("downloading Debian's git package into %s", tmp)
        try:
            subprocess.run(
                ["apt-get", "download", "git"],
                cwd=tmp,
                check=True,
                capture_output=True,
                timeout=300,
            )
            debs = list(Path(tmp).glob("git_*.deb"))
            if not debs:
                raise DownloadError(hint.format("apt-get downloaded no git_*.deb"))
            subprocess.run(
                ["dpkg-deb", "-x", str(debs[0]), str(cache)], check=True, capture_output=True
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            reason = detail.decode(errors="replace").strip().splitlines()[-1:] or [str(exc)]
            raise DownloadError(hint.format(reason[0])) from None
