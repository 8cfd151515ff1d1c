"""mlxtune: measure how MLX's cache and memory limits trade speed for footprint."""

from mlxtune.advice import Recommendation
from mlxtune.compare import compare
from mlxtune.fleet_result import FleetResult, load
from mlxtune.history import clear_history, history
from mlxtune.memory import (
    Snapshot,
    cache_limit,
    memory_limit,
    snapshot,
    track,
    wired_limit,
)
from mlxtune.paired import Blocks
from mlxtune.result import SweepResult
from mlxtune.sweep import SweepError, Workload, sweep
from mlxtune.units import UNLIMITED, format_size, parse_size
from mlxtune.workloads import allocator_churn, lm, lm_factory, tiny_model

__all__ = [
    "UNLIMITED",
    "Blocks",
    "FleetResult",
    "Recommendation",
    "Snapshot",
    "SweepError",
    "SweepResult",
    "Workload",
    "allocator_churn",
    "cache_limit",
    "clear_history",
    "compare",
    "format_size",
    "history",
    "lm",
    "lm_factory",
    "load",
    "memory_limit",
    "parse_size",
    "snapshot",
    "sweep",
    "tiny_model",
    "track",
    "wired_limit",
]


def load_ipython_extension(ipython):  # IPython calls it with its shell
    """``%load_ext mlxtune``: register the magics."""
    from mlxtune.magics import register

    register(ipython)


def unload_ipython_extension(ipython):
    """``%unload_ext mlxtune``: remove the magics."""
    from mlxtune.magics import unregister

    unregister(ipython)
