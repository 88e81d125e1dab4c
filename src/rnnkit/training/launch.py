"""``--nproc N``: start N training processes on this machine through torch's elastic launcher.

The same machinery as ``torchrun --standalone --nproc_per_node=N`` (torch.distributed.launcher's
``elastic_launch`` with a c10d rendezvous on this machine): each worker runs the same ``rnnkit``
command without ``--nproc`` and reads torchrun's environment (``RANK``, ``WORLD_SIZE``, ...).
"""

from __future__ import annotations

import errno
import logging
import socket
import sys
import uuid
from collections.abc import Sequence

from rnnkit.errors import ConfigError

logger = logging.getLogger(__name__)

EXIT_CODES_TO_KEEP = (2, 130, 143)  # a worker's one-line user error or interruption


def worker_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--nproc N`` / ``--nproc=N`` (the workers are the processes)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def check_port(port: int) -> None:
    """Raise :class:`ConfigError` if ``port`` (0: any free one) cannot be bound on this machine."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise ConfigError(
                f"the rendezvous port {port} is in use; pass another --port, or --port 0 for a "
                "free one"
            ) from None


def launch(argv: Sequence[str], nproc: int, *, port: int = 0) -> int:
    """Run ``rnnkit ARGV`` in ``nproc`` worker processes; returns the exit status.

    A worker's own exit status is kept when it is a user error (2) or an interruption (130, 143),
    so the one line the worker printed is the whole story; SIGINT/SIGTERM to this process reach
    every worker (the launcher forwards them), and the workers checkpoint before they exit.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    check_port(port)
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"rnnkit-{uuid.uuid4().hex[:12]}",
        rdzv_backend="c10d",
        rdzv_endpoint=f"127.0.0.1:{port}",
        max_restarts=0,
        monitor_interval=0.1,
    )
    args = ["-m", "rnnkit", *worker_argv(argv)]
    logger.info("starting %d workers: %s %s", nproc, sys.executable, " ".join(args))
    # The workers print their own one-line errors; the launcher's log of them is for -v.
    elastic_log = logging.getLogger("torch.distributed.elastic")
    level = elastic_log.level
    if not logger.isEnabledFor(logging.INFO):
        elastic_log.setLevel(logging.CRITICAL)
    try:
        elastic_launch(config, sys.executable)(*args)
    except ChildFailedError as exc:
        codes = [failure.exitcode for failure in exc.failures.values()]
        return next((c for c in codes if c in EXIT_CODES_TO_KEEP), 1)
    except SignalException as exc:
        return 128 + int(exc.sigval)
    finally:
        elastic_log.setLevel(level)
    return 0
