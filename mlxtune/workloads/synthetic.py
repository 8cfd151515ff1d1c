"""Allocator stress without a model: many short-lived MLX buffers of varied sizes.

With a cache, a freed buffer is kept and handed to the next request of a fitting size; without
one, every buffer goes back to the system and the next is a fresh allocation. A run of
:func:`allocator_churn` makes that difference large and quick to measure, so a sweep over cache
limits shows the allocator's share of the cost in seconds instead of minutes.
"""

from __future__ import annotations

import math
import random
from collections import deque

from mlxtune._mlx import mx
from mlxtune.record import Work, Workload
from mlxtune.units import format_size, parse_size

__all__ = ["AllocatorChurn", "allocator_churn"]


class AllocatorChurn(Workload):
    """Seeded buffer sizes; each run allocates, touches and frees them (see :func:`allocator_churn`)."""

    def __init__(self, buffers: int, min_size: int, max_size: int, live: int, distinct: int,
                 seed: int) -> None:
        self.buffers = buffers
        self.min_size = min_size
        self.max_size = max_size
        self.live = live
        self.distinct = distinct
        self.seed = seed
        rng = random.Random(seed)
        low, high = math.log(min_size), math.log(max_size)
        # float32 elements, log-uniform sizes: as many small buffers as large ones
        palette = [max(1, int(math.exp(rng.uniform(low, high))) // 4) for _ in range(distinct)]
        self.lengths = [rng.choice(palette) for _ in range(buffers)]

    def __call__(self) -> Work:
        held: deque[mx.array] = deque(maxlen=self.live)
        for n, length in enumerate(self.lengths):
            buffer = mx.full((length,), float(n), dtype=mx.float32) * 2.0
            mx.eval(buffer)
            held.append(buffer)  # the oldest of `live` buffers is freed here
        held.clear()
        return Work(units=float(self.buffers), unit="buffers")

    def describe(self) -> str:
        return (
            f"allocator_churn({self.buffers} buffers of {format_size(self.min_size)}.."
            f"{format_size(self.max_size)} in {self.distinct} sizes, {self.live} live, seed {self.seed})"
        )


def allocator_churn(
    buffers: int = 2000,
    min_size: str | int = "4KB",
    max_size: str | int = "4MB",
    live: int = 4,
    distinct: int = 16,
    seed: int = 0,
) -> AllocatorChurn:
    """A workload that allocates ``buffers`` buffers of ``min_size``..``max_size``, seeded.

    ``distinct`` sizes are drawn log-uniformly, then each buffer takes one of them, as a model's
    layers ask for the same few shapes again and again (a cache can only help with sizes that
    recur). Each buffer is filled, doubled (a second allocation) and evaluated; at most ``live``
    stay alive, the rest are freed as the run goes. Throughput is buffers per second.
    """
    for name, value in (("buffers", buffers), ("live", live), ("distinct", distinct)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, not {value!r}")
    low, high = parse_size(min_size), parse_size(max_size)
    if not 4 <= low <= high:
        raise ValueError(f"need 4B <= min_size <= max_size, got {format_size(low)} and {format_size(high)}")
    return AllocatorChurn(buffers, low, high, live, distinct, seed)
