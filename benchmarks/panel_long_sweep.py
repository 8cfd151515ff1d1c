"""The SweepPanel over 1,000 short runs: its live plot and table cost little per run and do not grow.

The same sweep (4 cache limits x 250 repeats of a ~1 ms allocator workload) runs bare (``sweep``
alone) and in a SweepPanel redrawing as it goes (every 0.5 s, at most a fifth of the time):
- timing: total time, and the gap between one run's end and the next run's start (engine plus
  front end, from the runs frame), median of the first 100 runs against the last 100;
- memory (a second panel pass under tracemalloc): Python heap growth between run 100 and the end,
  per run, against what the runs frame itself holds per run. Flat means growth ~ the rows alone.
Prints the figures and writes them to benchmarks/results/panel_long_sweep.txt.
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pandas as pd
from _common import LONG_SWEEP_LIMITS, LONG_SWEEP_REPEATS, publish, short_run

from mlxtune import sweep
from mlxtune.sweep import SweepProgress
from mlxtune.widgets import SweepPanel

RUNS_PER_LIMIT = LONG_SWEEP_REPEATS
LIMITS = LONG_SWEEP_LIMITS


def gaps_us(runs: pd.DataFrame) -> np.ndarray:
    """Microseconds between each run's end and the next run's start."""
    starts = runs["started_at"].to_numpy()
    ends = starts + runs["wall_seconds"].to_numpy()
    return (starts[1:] - ends[:-1]) * 1e6


def describe(name: str, runs: pd.DataFrame, seconds: float) -> str:
    gaps = gaps_us(runs)
    first, last = np.median(gaps[:100]), np.median(gaps[-100:])
    return (f"{name:<6} {len(runs)} runs in {seconds:.1f} s; gap between runs: median {first:.0f} us "
            f"(first 100 runs), {last:.0f} us (last 100)")


def panel_pass(trace: bool) -> tuple[SweepPanel, float, int, float]:
    """One panel sweep: the panel, its seconds, redraws, traced heap growth per run (run 100 to 900)."""
    panel = SweepPanel(short_run, cache_limits=LIMITS, repeats=RUNS_PER_LIMIT, warmup=1, refresh=0.5)
    draws: list[float] = []
    panel.plot.observe(lambda _: draws.append(time.perf_counter()), names="value")
    if trace:
        tracemalloc.start()
    start = time.perf_counter()
    panel.run()
    heap = []
    for mark in (100, 900):
        while panel.progress.value < mark:
            time.sleep(0.0005)
        heap.append((panel.progress.value, tracemalloc.get_traced_memory()[0] if trace else 0))
    panel.wait()
    seconds = time.perf_counter() - start
    if trace:
        tracemalloc.stop()
    (first, heap_first), (last, heap_last) = heap
    return panel, seconds, len(draws), (heap_last - heap_first) / (last - first)


def bare_growth() -> float:
    """Heap growth per run of the engine alone (no front end), run 100 to 900, traced."""
    heap: dict[int, int] = {}

    def on_run(record: object, progress: SweepProgress) -> None:
        if progress.done in (100, 900):
            heap[progress.done] = tracemalloc.get_traced_memory()[0]

    tracemalloc.start()
    sweep(short_run, LIMITS, repeats=RUNS_PER_LIMIT, warmup=1, progress=False, on_run=on_run)
    tracemalloc.stop()
    return (heap[900] - heap[100]) / 800


def main() -> None:
    start = time.perf_counter()
    bare = sweep(short_run, LIMITS, repeats=RUNS_PER_LIMIT, warmup=1, progress=False, label="bare")
    lines = [describe("bare", bare.runs, time.perf_counter() - start)]

    panel, seconds, draws, _ = panel_pass(trace=False)
    lines += [describe("panel", panel.result.runs, seconds), f"panel  {draws} redraws of the plot and table"]
    panel.close()

    panel, _, draws, growth = panel_pass(trace=True)
    panel.close()
    lines += [
        f"bare   heap growth from run 100 to 900 (traced): {bare_growth():.0f} bytes per run (its records)",
        f"panel  heap growth from run 100 to 900 (traced, {draws} redraws): {growth:.0f} bytes per run",
    ]
    publish("panel_long_sweep.txt", "\n".join(lines))


if __name__ == "__main__":
    main()
