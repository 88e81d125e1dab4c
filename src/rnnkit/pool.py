"""Work spread over threads that Ctrl-C and ``kill`` stop promptly and safely.

``with ThreadPoolExecutor() as pool: for r in pool.map(...)`` has two faults for a long job:
leaving the block waits for every task submitted (``map`` cancels the rest only if its iterator
is closed), and an exception raised by a signal handler while the main thread is inside the
pool's locks can leave one of them held, so that a worker blocks on it and the process never
ends. The second was seen: a ``kill`` during the speech corpus build once left ``rnnkit speech
train`` rendering utterances for nine more minutes. :func:`map_in_threads` instead turns SIGINT and
SIGTERM into a flag while it runs, checks the flag between results, cancels the tasks not yet
started, waits for the running ones (their outputs are written atomically) and only then
delivers the signal again, outside the pool, to the handler that was there before (the CLI's:
``rnnkit: interrupted`` / ``terminated``).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

SIGNALS = (signal.SIGINT, signal.SIGTERM)
POLL_SECONDS = 0.2  # how often the main thread looks at the flag while a task runs


def map_in_threads(func: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``func(item)`` for each item, in order, computed by ``workers`` threads.

    A SIGINT or SIGTERM while it runs (main thread only) stops it between results: the tasks
    not started are cancelled, the running ones finish, then the signal is raised again with
    the previous handlers back (so SIGINT ends as ``KeyboardInterrupt``). An exception of the
    consumer, or of a task, cancels the rest the same way and propagates.
    """
    caught: list[int] = []
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in SIGNALS:
            if signal.getsignal(sig) is not signal.SIG_IGN:
                previous[sig] = signal.signal(sig, lambda signum, frame: caught.append(signum))
    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    futures = []
    try:
        futures = [pool.submit(func, item) for item in items]
        for future in futures:
            while not (caught or wait([future], timeout=POLL_SECONDS).done):
                pass
            if caught:
                break
            yield future.result()
    finally:
        for future in futures:
            future.cancel()
        pool.shutdown(wait=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if caught:  # also when the consumer stopped early (the generator closed)
            signal.raise_signal(caught[0])  # the previous handler, now outside the pool
            raise KeyboardInterrupt  # that handler returned: the work is cut short all the same
