import os
import signal
import threading
import time

import pytest

from rnnkit.pool import map_in_threads


class Stopped(BaseException):
    pass


def _task_log():
    ran, lock = [], threading.Lock()

    def task(i):
        time.sleep(0.01)
        if i == "boom":
            raise ValueError("task failed")
        with lock:
            ran.append(i)
        return i * 2

    return ran, task


def test_results_in_order_without_an_interruption():
    ran, task = _task_log()
    assert list(map_in_threads(task, range(50), 3)) == [2 * i for i in range(50)]
    assert sorted(ran) == list(range(50))


@pytest.fixture
def sigterm_raises_stopped():
    def handler(signum, frame):
        raise Stopped

    previous = signal.signal(signal.SIGTERM, handler)
    yield handler
    signal.signal(signal.SIGTERM, previous)


def test_sigterm_cancels_the_rest_then_reaches_the_previous_handler(sigterm_raises_stopped):
    ran, task = _task_log()
    seen = 0
    with pytest.raises(Stopped):
        for _ in map_in_threads(task, range(400), 2):
            seen += 1
            if seen == 3:
                os.kill(os.getpid(), signal.SIGTERM)  # a real signal, while the pool works
    assert seen <= 5 and len(ran) <= 10  # not 400
    assert signal.getsignal(signal.SIGTERM) is sigterm_raises_stopped  # put back


def test_sigint_ends_as_keyboard_interrupt_with_the_default_handler_back():
    ran, task = _task_log()
    with pytest.raises(KeyboardInterrupt):
        for i in map_in_threads(task, range(400), 2):
            if i == 4:
                os.kill(os.getpid(), signal.SIGINT)
    assert len(ran) <= 10
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_ignored_signal_stays_ignored():
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        ran, task = _task_log()
        out = []
        for i in map_in_threads(task, range(40), 2):
            out.append(i)
            if i == 4:
                os.kill(os.getpid(), signal.SIGTERM)
        assert len(out) == len(ran) == 40
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_failing_task_or_an_early_stop_cancels_the_rest():
    ran, task = _task_log()
    with pytest.raises(ValueError, match="task failed"):
        list(map_in_threads(task, [1, 2, "boom", *range(3, 400)], 2))
    assert len(ran) <= 10
    ran, task = _task_log()
    results = map_in_threads(task, range(400), 2)
    for i in results:
        if i == 2:
            break
    results.close()  # what a for loop's end does to an abandoned generator
    assert len(ran) <= 10
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_sigint_during_a_speech_corpus_build_stops_it(tmp_path, monkeypatch):
    """Ctrl-C or kill during `speech synth` (or the first `speech train`) once went on
    synthesizing the whole corpus."""
    import numpy as np
    import soundfile

    from rnnkit.speech import synth

    calls = []

    def fake_many(batch):
        calls.append(len(batch))
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.02)
        return [np.zeros(1600, dtype=np.float32) for _ in batch]

    monkeypatch.setattr(synth, "synthesize_many", fake_many)
    monkeypatch.setattr(synth, "require", lambda program: program)
    utts = synth.plan("train", 200, seed=0)
    with pytest.raises(KeyboardInterrupt):
        synth.build(tmp_path, utts, workers=2)
    assert len(calls) <= 8  # not 200
    assert not (tmp_path / "train.jsonl").exists()  # no manifest of a corpus not built
    written = sorted(tmp_path.rglob("*.flac"))
    assert 1 <= len(written) <= 8
    for path in written:  # atomic writes: every file there is whole
        assert soundfile.read(path)[0].shape == (1600,)
