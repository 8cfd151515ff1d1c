"""Reports of long sweeps: the cost of figures and files as runs grow, and no memory kept behind.

- cost: for results of 100, 1,000 and 10,000 constructed runs (5 cache limits), the time of
  ``summary()``, each figure, ``to_html``, ``to_json`` and ``load``, and the size of the files;
- flat memory: 30 rounds of all three figures plus an HTML report of a 1,000-run result, Python heap
  growth under tracemalloc between round 10 and round 30, per round. Flat means about 0 bytes.
Prints the figures and writes them to benchmarks/results/report_scale.txt.
"""

from __future__ import annotations

import gc
import os
import pathlib
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))
from sweep_data import SPEEDS, make_result  # constructed results, shared with the tests

from mlxtune import load
from mlxtune.result import SweepResult

RESULTS = pathlib.Path(__file__).parent / "results" / "report_scale.txt"


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def cost(result: SweepResult, folder: str) -> str:
    html, json_path = os.path.join(folder, "r.html"), os.path.join(folder, "r.json")
    seconds = {
        "summary": timed(result.summary),
        **{kind: timed(lambda k=kind: result.plot(k)) for kind in ("tradeoff", "throughput", "memory")},
        "to_html": timed(lambda: result.to_html(html)),
        "to_json": timed(lambda: result.to_json(json_path)),
        "load": timed(lambda: load(json_path)),
    }
    sizes = f"HTML {os.path.getsize(html) / 1e6:.2f}MB, JSON {os.path.getsize(json_path) / 1e6:.2f}MB"
    times = ", ".join(f"{name} {value * 1000:.0f}ms" for name, value in seconds.items())
    return f"{len(result.runs):>6} runs: {times}; {sizes}"


def heap_growth(result: SweepResult, folder: str, rounds: int = 30, settle: int = 10) -> list[str]:
    tracemalloc.start()
    samples, first = [], None
    for index in range(rounds):
        for kind in ("tradeoff", "throughput", "memory"):
            result.plot(kind)
        result.to_html(os.path.join(folder, "again.html"))
        gc.collect()
        if index >= settle:
            samples.append(tracemalloc.get_traced_memory()[0])
            first = first or tracemalloc.take_snapshot()
    growth = tracemalloc.take_snapshot().compare_to(first, "filename")[:3]
    tracemalloc.stop()
    per_round = np.polyfit(np.arange(len(samples)), samples, 1)[0]
    return [
        f"heap after round {settle}: {samples[0] / 1e6:.2f}MB, "
        f"after round {rounds}: {samples[-1] / 1e6:.2f}MB; "
        f"trend {per_round:+.0f} bytes per round (3 figures + 1 HTML report of {len(result.runs)} runs)",
        "largest growth by file: " + "; ".join(
            f"{stat.traceback[0].filename.split('site-packages/')[-1]} {stat.size_diff:+d} bytes"
            for stat in growth
        ),
    ]


def main() -> None:
    lines = []
    with tempfile.TemporaryDirectory() as folder:
        cost(make_result(SPEEDS, repeats=2), folder)  # imports and font caches, not counted
        for repeats in (20, 200, 2000):
            lines.append(cost(make_result(SPEEDS, repeats=repeats, noise=0.02), folder))
            print(lines[-1], flush=True)
        lines += heap_growth(make_result(SPEEDS, repeats=200, noise=0.02), folder)
        print("\n".join(lines[-2:]))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
