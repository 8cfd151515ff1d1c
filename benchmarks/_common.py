"""What the cost benchmarks share: where results go, and the ~1 ms allocator run of the long sweeps."""

from __future__ import annotations

import pathlib

import mlx.core as mx

RESULTS = pathlib.Path(__file__).parent / "results"

#: The long sweeps: 4 cache limits x 250 repeats of :func:`short_run`.
LONG_SWEEP_LIMITS = [0, "1MB", "4MB", "unlimited"]
LONG_SWEEP_REPEATS = 250


def short_run() -> int:
    """A few buffers of varied sizes, allocated and freed: about a millisecond of allocator work."""
    total = mx.array(0.0)
    for size in (10_000, 300_000, 1_000_000):
        total = total + mx.ones((size,)).sum()
    mx.eval(total)
    return 3


def publish(name: str, text: str) -> pathlib.Path:
    """Print a benchmark's figures and keep them in benchmarks/results/NAME."""
    print(text)
    path = RESULTS / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip("\n") + "\n")
    return path
