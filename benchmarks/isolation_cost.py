"""What a sweep in a clean engine process costs: a 25-run lm sweep here and in an ipyparallel engine.

    python benchmarks/isolation_cost.py

Starts a local one-engine cluster (loopback only) and times that start. Then, once the engine is up,
runs the same sweep (the tiny random-weight model, 5 cache limits x 5 rounds, prompt 64, decode
64; each sweep loads the model afresh, here and there alike) in this process and in the engine,
alternating in a shuffled order for ROUNDS rounds so the machine's drift hits both alike. Prints
the ratio of wall times, isolated over in-process, with its 95% interval (Hodges-Lehmann,
``mlxtune.stats.ratio_ci``; goal: under 1.05 once the engine is up). On a noisy machine whole sweeps
vary more than isolation costs, so it also prints what isolation adds outside the runs: each
sweep's wall time less the span from its first run's start to its last run's end (set-up, model
load, warm-up, and for the engine packing, sending, polling and the result's way back), here and in
the engine, and the difference of their medians as a share of the sweep. Writes
benchmarks/results/isolation_cost.txt.
"""

from __future__ import annotations

import json
import logging
import random
import statistics
import tempfile
import time

import ipyparallel as ipp
from _common import publish

import mlxtune
from mlxtune.stats import ratio_ci
from mlxtune.store import to_document

ROUNDS = 10
LIMITS = ["0", "1MB", "4MB", "32MB", "unlimited"]
REPEATS = 5


def one_sweep(model: str, where: object) -> tuple[float, float, mlxtune.SweepResult]:
    """The sweep's wall time, the part of it outside the span of its runs, and the result."""
    started = time.time()  # the clock runs' started_at uses, here and in a local engine
    workload = mlxtune.lm(model, prompt_tokens=64, gen_tokens=64)
    result = mlxtune.sweep(workload, cache_limits=LIMITS, repeats=REPEATS, warmup=1, progress=False,
                           isolate=where)
    ended = time.time()
    runs = result.runs
    span = float((runs["started_at"] + runs["wall_seconds"]).max() - runs["started_at"].min())
    return ended - started, ended - started - span, result


def main() -> None:
    model = str(mlxtune.tiny_model(size="tiny"))
    with tempfile.TemporaryDirectory() as profile:
        started = time.perf_counter()
        cluster = ipp.Cluster(n=1, profile_dir=profile, controller_ip="127.0.0.1", log_level=logging.ERROR)
        client = cluster.start_and_connect_sync()
        engine_start = time.perf_counter() - started
        try:
            first, _, _ = one_sweep(model, client)  # the engine's first sweep also imports mlx and mlx-lm
            walls: dict[str, list[float]] = {"here": [], "engine": []}
            outside: dict[str, list[float]] = {"here": [], "engine": []}
            sizes = []
            order = random.Random(0)
            for _ in range(ROUNDS):
                places = ["here", "engine"]
                order.shuffle(places)
                for place in places:
                    wall, around, result = one_sweep(model, client if place == "engine" else False)
                    walls[place].append(wall)
                    outside[place].append(around)
                    if place == "engine":
                        sizes.append(len(json.dumps(to_document(result, derived=False))))
        finally:
            cluster.stop_cluster_sync()
    ratio, low, high = ratio_ci(walls["engine"], walls["here"])
    median = statistics.median(walls["here"])
    around = {place: statistics.median(times) for place, times in outside.items()}
    added = around["engine"] - around["here"]
    lines = [
        f"a {len(LIMITS) * REPEATS}-run lm sweep (tiny model, prompt 64, decode 64, {len(LIMITS)} limits x "
        f"{REPEATS} rounds, warm-up 1), {ROUNDS} times in this process and {ROUNDS} times in one "
        "ipyparallel engine, interleaved",
        f"engine start (controller + 1 engine, connected): {engine_start:.1f} s; the engine's first sweep "
        f"(imports mlx and mlx-lm there): {first:.1f} s",
        f"in-process sweep: median {median:.2f} s",
        f"wall time in the engine / in this process: {ratio:.4f} (95% CI {low:.4f} .. {high:.4f}); "
        f"cost {ratio - 1:+.2%} once the engine is up (goal: under 5%)",
        "time outside the runs (set-up, model load, warm-up; for the engine also sending and the "
        f"way back): median {around['here']:.2f} s here, {around['engine']:.2f} s in the engine",
        f"isolation adds {added:+.2f} s a sweep outside the runs: {added / median:+.2%} of the in-process "
        f"sweep (goal: under 5%); result sent back: about {max(sizes) / 1000:.0f} kB of JSON text",
    ]
    publish("isolation_cost.txt", "\n".join(lines))


if __name__ == "__main__":
    main()
