"""Constructed sweep results for the tests of figures, reports and comparisons (no MLX runs)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlxtune.record import runs_frame
from mlxtune.result import SweepResult
from mlxtune.units import UNLIMITED

MB = 1_000_000
#: A typical grid: 0 .. unlimited, with a real trade-off (more cache: faster, bigger).
LIMITS = (0, 1 * MB, 16 * MB, 256 * MB, UNLIMITED)
SPEEDS = {0: 100.0, 1 * MB: 130.0, 16 * MB: 160.0, 256 * MB: 170.0, UNLIMITED: 171.0}
CACHE = {0: 0, 1 * MB: 1 * MB, 16 * MB: 16 * MB, 256 * MB: 60 * MB, UNLIMITED: 60 * MB}
PEAK = 80 * MB


def row(cache_limit: int, repeat: int, speed: float, *, cache: int = 0, peak: int = PEAK, error: str = "",
        **params: Any) -> dict[str, Any]:
    """One run as :meth:`RunRecord.to_row` gives it: 100 tokens at ``speed`` tokens/s."""
    seconds = 100.0 / speed
    return {
        "cache_limit": cache_limit, **params, "repeat": repeat, "seconds": seconds,
        "wall_seconds": seconds * 1.01, "units": 0.0 if error else 100.0, "unit": "tokens",
        "throughput": float("nan") if error else speed, "peak_memory": peak, "active_before": 1000,
        "active_after": 1000, "cache_before": 0, "cache_after": cache, "process_rss": 300 * MB + cache,
        "memory_limit": UNLIMITED, "started_at": 1.7e9 + repeat, "error": error,
    }


def make_result(
    speeds: Mapping[int, float] = SPEEDS,
    *,
    repeats: int = 5,
    noise: float = 0.01,
    seed: int = 0,
    label: str = "tiny fp16",
    extra: Mapping[str, Sequence[Any]] | None = None,
    scale: Mapping[Any, float] | None = None,
    **fields: Any,
) -> SweepResult:
    """A result whose median throughput at each limit is about ``speeds[limit]`` (relative ``noise``).

    ``extra`` adds grid axes (e.g. ``{"dtype": ["fp16", "q4"]}``); ``scale`` multiplies the speed
    of a point of the first extra axis by its value.
    """
    rng = np.random.default_rng(seed)
    axes = dict(extra or {})
    points: list[dict[str, Any]] = [{}]
    for name, values in axes.items():
        points = [{**p, name: v} for p in points for v in values]
    rows = []
    for point in points:
        factor = (scale or {}).get(next(iter(point.values()), None), 1.0) if point else 1.0
        for limit, speed in speeds.items():
            for repeat in range(repeats):
                value = speed * factor * (1 + noise * rng.standard_normal())
                rows.append(row(limit, repeat, value, cache=CACHE.get(limit, 0), **point))
    params = ["cache_limit", *axes]
    defaults: dict[str, Any] = {
        "workload": "lm: tiny llama, 16 prompt tokens, 8 generated", "unit": "tokens",
        "planned_runs": len(rows),
        "environment": {"mlxtune": "0.1.0", "mlx": "0.32.4", "mlx_lm": "0.32.2", "backend": "cpu",
                        "device_name": "test cpu", "device_memory": 24 * 1024**3, "os": "Linux",
                        "python": "3.12.0", "date": "2026-11-27T20:00:00+00:00"},
        "options": {"repeats": repeats, "warmup": 1, "seed": seed},
    }
    return SweepResult(runs=runs_frame(rows, params), params=params, label=label, **{**defaults, **fields})


def result_of(points: Mapping[Any, Sequence[float]], *, cache_held: Mapping[int, int] | None = None,
              axis: str | None = None, **fields: Any) -> SweepResult:
    """A sweep whose point ``k`` ran at the given speeds, round by round (repeat 0, 1, ...).

    Keys are cache limits, or (cache limit, value of ``axis``) pairs with ``axis`` set. Each
    limit holds ``cache_held[limit]`` bytes of cache (default: the limit, at most 50 MB).
    """
    held = cache_held or {}
    rows = []
    for key, speeds in points.items():
        limit, extra = (key[0], {axis: key[1]}) if axis else (key, {})
        for repeat, speed in enumerate(speeds):
            rows.append(row(limit, repeat, speed, cache=held.get(limit, min(limit, 50 * MB)), **extra))
    params = ["cache_limit", *([axis] if axis else [])]
    return SweepResult(runs=runs_frame(rows, params), params=params, unit="tokens", **fields)
