"""The sweep engine's own cost: a sweep's total time against the time of its measured runs.

Runs of about 0.5 s (matrix products on MLX's default device) under three cache limits, three
repeats, no warm-up, with and without the progress bar. The engine's cost is the sweep's wall time
minus the sum of the runs' wall times (``wall_seconds``), as a share of the total; target < 2%.
Prints the figures and writes them to benchmarks/results/sweep_cost.txt.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import mlx.core as mx
from _common import publish

from mlxtune import memory, sweep

TARGET_SECONDS = 0.5


def make_workload(target: float = TARGET_SECONDS) -> Callable[[], int]:
    """A workload of matrix products, sized by timing a short trial to take about ``target`` seconds."""
    a = mx.random.normal((512, 512))
    mx.eval(a)

    def products(n: int) -> int:
        for _ in range(n):
            mx.eval(a @ a)
        return n

    start = time.perf_counter()
    products(20)
    per_product = (time.perf_counter() - start) / 20
    count = max(1, round(target / per_product))
    return lambda: products(count)


def main() -> None:
    work = make_workload()
    lines = [f"backend {memory.backend()}: runs of ~{TARGET_SECONDS}s, 3 cache limits x 3 repeats, no warmup"]
    for progress in (False, True):
        start = time.perf_counter()
        result = sweep(work, cache_limits=[0, "16MB", "unlimited"], repeats=3, warmup=0, label="matmul",
                       progress=progress)
        total = time.perf_counter() - start
        measured = float(result.runs["wall_seconds"].sum())
        cost = total - measured
        lines.append(
            f"progress={'on' if progress else 'off'}: sweep {total:.3f}s, measured runs {measured:.3f}s "
            f"(median run {result.runs['wall_seconds'].median():.3f}s), engine {cost * 1000:.1f}ms = "
            f"{cost / total:.2%} of the total ({cost / len(result.runs) * 1000:.2f}ms per run)"
        )
    publish("sweep_cost.txt", "\n".join(lines))


if __name__ == "__main__":
    main()
