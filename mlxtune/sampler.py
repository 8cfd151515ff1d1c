"""Memory over time: a background thread that samples MLX's counters and the process's memory.

An app is killed for its footprint at its worst moment, not at the start or end of a run, so each
run is sampled while it runs: every ``interval`` seconds (default 2 ms) the thread reads MLX's active
and cache memory (:func:`mlxtune.memory.counters`, safe from another thread) and the process's
memory as the OS counts it (:func:`mlxtune.memory.process_memory`: the physical footprint on macOS,
the resident set elsewhere). The history is bounded: past ``max_samples`` every other sample is
dropped and the interval doubles, so a long run keeps an even record at a coarser step.

The thread holds the GIL only for the reads (a few microseconds); the run itself goes on in MLX's
own threads and in C++ with the GIL released, so a sample lands during an evaluation too
(``benchmarks/sampler_cost.py`` measures what it costs). Past 2048 samples, and with steps longer
than 20 ms, the thread checks every 20 ms whether it is still wanted, so a stop is never held up.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

import numpy as np

from mlxtune import memory
from mlxtune.record import SAMPLE_COLUMNS, Samples

__all__ = ["DEFAULT_INTERVAL", "Sampler"]

#: Seconds between samples unless told otherwise.
DEFAULT_INTERVAL = 0.002
_MAX_SAMPLES = 2048
_SLEEP_UP_TO = 0.02


class Sampler:
    """Samples memory between :meth:`start` and :meth:`stop` (or ``with``), on mlxtune's one sampling
    thread.

    ``interval=None`` or 0 takes one sample at the start and one at the stop only. After
    :meth:`stop`, ``samples`` holds what was seen. The sampling thread is started once per process
    and waits while nothing is sampled, so a run costs no thread start, and :meth:`stop` returns at
    once instead of waiting out the thread's sleep. One sampler samples at a time (mlxtune measures
    one run at a time); a sampler started while another samples takes the thread over.
    """

    def __init__(self, interval: float | None = DEFAULT_INTERVAL, max_samples: int = _MAX_SAMPLES) -> None:
        if interval is not None and not (isinstance(interval, (int, float)) and 0 <= interval <= 60):
            raise ValueError(f"sample interval must be seconds in [0, 60] or None, not {interval!r}")
        if max_samples < 16:
            raise ValueError(f"max_samples must be at least 16, not {max_samples!r}")
        self.interval = interval or 0.0
        self.max_samples = max_samples
        self.step = self.interval
        self._rows: list[tuple[float, int, int, int]] = []
        self._started = 0.0

    def start(self) -> Sampler:
        self._rows, self.step = [], self.interval
        self._started = time.perf_counter()
        self.sample()
        if self.interval:
            _thread().begin(self)
        return self

    def stop(self) -> Samples:
        """Stop sampling (one last sample is taken) and return what was seen."""
        _thread().end(self)
        self.sample()
        self.samples = Samples(np.array(self._rows, dtype=float).reshape(-1, len(SAMPLE_COLUMNS)))
        return self.samples

    def sample(self) -> None:
        """Take one sample now; past ``max_samples``, keep every other one (and the samples that hold
        the peaks, which a run's footprint and process peak are read from) and sample half as often."""
        active, cache = memory.counters()
        self._rows.append((time.perf_counter() - self._started, active, cache, memory.process_memory()))
        if len(self._rows) >= self.max_samples:
            rows = self._rows
            peaks = {max(range(len(rows)), key=lambda i: rows[i][1] + rows[i][2]),
                     max(range(len(rows)), key=lambda i: rows[i][3])}
            self._rows = [row for i, row in enumerate(rows) if i % 2 == 0 or i in peaks]
            self.step *= 2

    def __enter__(self) -> Sampler:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class _Thread:
    """The process's sampling thread: idle until a sampler begins, then a sample every step until it ends."""

    def __init__(self) -> None:
        self._changed = threading.Condition(threading.Lock())  # a plain lock: cheaper than the RLock default
        self._current: Sampler | None = None
        threading.Thread(target=self._loop, name="mlxtune-sampler", daemon=True).start()

    def begin(self, sampler: Sampler) -> None:
        with self._changed:
            self._current = sampler
            self._changed.notify()

    def end(self, sampler: Sampler) -> None:
        with self._changed:  # once this returns, no sample of the loop lands in ``sampler``
            if self._current is sampler:
                self._current = None

    def _loop(self) -> None:  # never returns; a daemon thread that idles costs nothing at exit
        while True:
            with self._changed:
                while self._current is None:
                    self._changed.wait()
                sampler = self._current
            while self._sleep(sampler):
                with self._changed:
                    if self._current is not sampler:
                        break
                    sampler.sample()

    def _sleep(self, sampler: Sampler) -> bool:
        """Sleep one step of ``sampler``; False as soon as it is no longer the one sampling.

        ``time.sleep`` costs half the CPU of a condition's timed wait, which matters at a thousand
        wake-ups a second; a long step is slept in pieces of 20 ms so a stopped sampler is let go soon.
        """
        left = sampler.step
        while left > _SLEEP_UP_TO:
            time.sleep(_SLEEP_UP_TO)
            left -= _SLEEP_UP_TO
            if self._current is not sampler:
                return False
        time.sleep(left)
        return self._current is sampler


_THREAD: _Thread | None = None
_THREAD_LOCK = threading.Lock()


def _thread() -> _Thread:
    global _THREAD
    with _THREAD_LOCK:
        if _THREAD is None:
            _THREAD = _Thread()
        return _THREAD
