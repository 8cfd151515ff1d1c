"""Memory over time: a background thread that samples MLX's counters and the process's memory.

An app is killed for its footprint at its worst moment, not at the start or end of a run, so each
run is sampled while it runs: every ``interval`` seconds (default 2 ms) the thread reads MLX's active
and cache memory (:func:`mlxtune.memory.counters`, safe from another thread) and the process's
memory as the OS counts it (:func:`mlxtune.memory.process_memory`: the physical footprint on macOS,
the resident set elsewhere). The history is bounded: past ``max_samples`` every other sample is
dropped and the interval doubles, so a long run keeps an even record at a coarser step.

The thread holds the GIL only for the reads (a few microseconds); the run itself goes on in MLX's
own threads and in C++ with the GIL released, so a sample lands during an evaluation too
(``benchmarks/sampler_cost.py`` measures what it costs).
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

import numpy as np
import pandas as pd

from mlxtune import memory

__all__ = ["DEFAULT_INTERVAL", "SAMPLE_COLUMNS", "Sampler", "Samples"]

#: Seconds between samples unless told otherwise.
DEFAULT_INTERVAL = 0.002
#: The columns of a timeline frame: seconds since the run started, and bytes.
SAMPLE_COLUMNS = ("seconds", "active", "cache", "process")
_MAX_SAMPLES = 2048
_SLEEP_UP_TO = 0.02


class Samples:
    """The samples of one run, as arrays (see :data:`SAMPLE_COLUMNS`); :meth:`frame` gives a frame."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def __len__(self) -> int:
        return len(self.values)

    @property
    def footprint_peak(self) -> int:
        """The largest active + cache seen, bytes (0 with no samples)."""
        return int((self.values[:, 1] + self.values[:, 2]).max()) if len(self) else 0

    @property
    def process_peak(self) -> int:
        """The largest process memory seen, bytes (0 with no samples)."""
        return int(self.values[:, 3].max()) if len(self) else 0

    def thinned(self, most: int) -> Samples:
        """At most ``most`` samples, evenly spaced, always keeping the first, the last and the peak."""
        if len(self) <= most:
            return self
        keep = set(np.linspace(0, len(self) - 1, most - 1).round().astype(int))
        keep.add(int((self.values[:, 1] + self.values[:, 2]).argmax()))
        return Samples(self.values[sorted(keep)])

    def frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.values, columns=list(SAMPLE_COLUMNS))
        return frame.astype({name: "int64" for name in SAMPLE_COLUMNS[1:]})


class Sampler:
    """Samples memory on a thread of its own between :meth:`start` and :meth:`stop` (or ``with``).

    ``interval=None`` or 0 takes one sample at the start and one at the stop only. After
    :meth:`stop`, ``samples`` holds what was seen.
    """

    def __init__(self, interval: float | None = DEFAULT_INTERVAL, max_samples: int = _MAX_SAMPLES) -> None:
        if interval is not None and not (isinstance(interval, (int, float)) and 0 <= interval <= 60):
            raise ValueError(f"sample interval must be seconds in [0, 60] or None, not {interval!r}")
        if max_samples < 16:
            raise ValueError(f"max_samples must be at least 16, not {max_samples!r}")
        self.interval = interval or 0.0
        self.max_samples = max_samples
        self._rows: list[tuple[float, int, int, int]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0

    def start(self) -> Sampler:
        self._rows.clear()
        self._stop.clear()
        self._started = time.perf_counter()
        self._sample()
        if self.interval:
            self._thread = threading.Thread(target=self._loop, name="mlxtune-sampler", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> Samples:
        """Stop sampling (one last sample is taken) and return what was seen."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._sample()
        self.samples = Samples(np.array(self._rows, dtype=float).reshape(-1, len(SAMPLE_COLUMNS)))
        return self.samples

    def _loop(self) -> None:
        step = self.interval
        while not self._stopped(step):
            self._sample()
            if len(self._rows) >= self.max_samples:  # keep every other sample, sample half as often
                del self._rows[1::2]
                step *= 2

    def _stopped(self, step: float) -> bool:
        """Wait one step; whether :meth:`stop` was called. Short steps sleep (half the CPU of an
        ``Event.wait``, which matters at a thousand wake-ups a second); long ones wait on the event
        so a stop is not held up."""
        if step <= _SLEEP_UP_TO:
            time.sleep(step)
            return self._stop.is_set()
        return self._stop.wait(step)

    def _sample(self) -> None:
        active, cache = memory.counters()
        self._rows.append((time.perf_counter() - self._started, active, cache, memory.process_memory()))

    def __enter__(self) -> Sampler:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
