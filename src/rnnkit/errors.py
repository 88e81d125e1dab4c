"""Errors that mean "the user asked for something that cannot be done", not "rnnkit has a bug".

The command line prints these as one line (``rnnkit: error: ...``) and exits non-zero, with no
traceback. Library code raises them (or a plain ``ValueError``/``TypeError`` for bad arguments)
with a message that names the bad value and says what to do instead.
"""


class RnnkitError(Exception):
    """Base class for user-facing errors: bad data, bad run directories, missing downloads."""


class DataError(RnnkitError, ValueError):
    """A corpus or data file cannot be used (empty, binary, wrong encoding, malformed line)."""


class RunDirError(RnnkitError, ValueError):
    """A run directory is missing files, belongs to another task, or to another rnnkit version."""


class DownloadError(RnnkitError, OSError):
    """A dataset could not be fetched (offline, checksum mismatch) and no cached copy exists."""
