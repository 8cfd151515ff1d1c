"""A sweep of 1,000 short runs: memory stays flat and the per-run overhead stays constant.

Two passes of the same sweep (4 cache limits x 250 repeats of a ~1 ms allocator workload):
- timing: the engine's cost per run (time between two consecutive ``on_run`` calls minus the run's
  wall time), median of the first 100 runs against the last 100; and the process's resident memory;
- memory: Python heap growth under tracemalloc between run 100 and run 1,000, per run, against the
  size of what the sweep must keep per run (its RunRecord). Flat means growth ~ the records alone.
Prints the figures and writes them to benchmarks/results/long_sweep.txt.
"""

from __future__ import annotations

import sys
import time
import tracemalloc

import numpy as np
import pandas as pd
import psutil
from _common import LONG_SWEEP_LIMITS, LONG_SWEEP_REPEATS, publish, short_run

from mlxtune import sweep
from mlxtune.record import RunRecord
from mlxtune.sweep import SweepProgress

RUNS_PER_LIMIT = LONG_SWEEP_REPEATS
LIMITS = LONG_SWEEP_LIMITS


def record_size(record: RunRecord) -> int:
    """Bytes a kept record takes: the object, its fields and its two small dicts."""
    fields = [getattr(record, name) for name in record.__dataclass_fields__]
    return sys.getsizeof(record) + sum(sys.getsizeof(v) for v in fields) + sum(
        sys.getsizeof(k) + sys.getsizeof(v) for k, v in record.params.items()
    )


def timing_pass() -> list[str]:
    process = psutil.Process()
    rss: dict[int, int] = {}
    stamps: list[float] = []

    def on_run(record: RunRecord, progress: SweepProgress) -> None:
        stamps.append(time.perf_counter())
        if progress.done in (100, 1000):
            rss[progress.done] = process.memory_info().rss

    start = time.perf_counter()
    result = sweep(short_run, cache_limits=LIMITS, repeats=RUNS_PER_LIMIT, warmup=1, progress=False,
                   on_run=on_run, label="long")
    total = time.perf_counter() - start
    runs = result.runs
    between = pd.Series(stamps).diff().iloc[1:].reset_index(drop=True)
    costs = (between - runs["wall_seconds"].iloc[1:].reset_index(drop=True)) * 1000
    first, last = costs.iloc[:100].median(), costs.iloc[-100:].median()
    blocks = " ".join(f"{costs.iloc[i : i + 100].median():.3f}" for i in range(0, len(costs), 100))
    slope = np.polyfit(np.arange(len(costs)), costs.to_numpy(), 1)[0] * 1000
    result.summary_frame()  # the first call imports scipy
    start = time.perf_counter()
    result.summary_frame()
    summary_ms = (time.perf_counter() - start) * 1000
    return [
        f"{len(runs)} runs in {total:.2f}s; median run {runs['wall_seconds'].median() * 1000:.2f}ms",
        f"engine cost per run (median): first 100 {first:.3f}ms, last 100 {last:.3f}ms "
        f"(ratio {last / first:.2f}); per block of 100 runs: {blocks}",
        f"trend of the engine cost (least squares): {slope:+.4f}ms per 1,000 runs",
        f"process RSS: run 100 {rss[100] / 1e6:.1f}MB, run 1000 {rss[1000] / 1e6:.1f}MB "
        f"(+{(rss[1000] - rss[100]) / 900:.0f} bytes per run)",
        f"summary() of {len(runs)} runs: {summary_ms:.1f}ms",
    ]


def memory_pass() -> list[str]:
    heap: dict[int, int] = {}
    kept: list[int] = []

    def on_run(record: RunRecord, progress: SweepProgress) -> None:
        kept.append(record_size(record))
        if progress.done in (100, 1000):
            heap[progress.done] = tracemalloc.get_traced_memory()[0]

    tracemalloc.start()
    try:
        sweep(short_run, cache_limits=LIMITS, repeats=RUNS_PER_LIMIT, warmup=1, progress=False,
              on_run=on_run, label="long")
    finally:
        tracemalloc.stop()
    per_run = (heap[1000] - heap[100]) / 900
    record = sum(kept) / len(kept)
    return [
        f"Python heap (tracemalloc): run 100 {heap[100] / 1e6:.2f}MB, run 1000 {heap[1000] / 1e6:.2f}MB: "
        f"{per_run:.0f} bytes per run, against {record:.0f} bytes per kept record "
        f"({per_run / record:.2f}x)",
    ]


def main() -> None:
    lines = [f"{len(LIMITS)} cache limits x {RUNS_PER_LIMIT} repeats, progress bar off", *timing_pass(),
             *memory_pass()]
    publish("long_sweep.txt", "\n".join(lines))


if __name__ == "__main__":
    main()
