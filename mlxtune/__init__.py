"""mlxtune: measure how MLX's cache and memory limits trade speed for footprint."""

from mlxtune.memory import (
    Snapshot,
    cache_limit,
    memory_limit,
    snapshot,
    track,
    wired_limit,
)
from mlxtune.result import SweepResult
from mlxtune.stats import Recommendation
from mlxtune.sweep import SweepError, Workload, sweep
from mlxtune.units import UNLIMITED, format_size, parse_size

__all__ = [
    "UNLIMITED",
    "Recommendation",
    "Snapshot",
    "SweepError",
    "SweepResult",
    "Workload",
    "cache_limit",
    "format_size",
    "memory_limit",
    "parse_size",
    "snapshot",
    "sweep",
    "track",
    "wired_limit",
]


def load_ipython_extension(ipython):  # noqa: ANN001, ANN201 - IPython's extension hook
    """``%load_ext mlxtune``: register the magics."""
    from mlxtune.magics import register

    register(ipython)


def unload_ipython_extension(ipython):  # noqa: ANN001, ANN201
    """``%unload_ext mlxtune``: remove the magics."""
    from mlxtune.magics import unregister

    unregister(ipython)
