"""The runs of ``%%mlxmem`` in this session, as the one runs frame every other part reads.

Each measured run is a :class:`~mlxtune.record.RunRecord` whose parameters are ``run`` (which
``%%mlxmem`` invocation it came from), ``label`` and ``cell`` (the first line of the cell), so
``history()`` feeds stats, plots and reports like a sweep's runs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import pandas as pd

from mlxtune.record import RunRecord, runs_frame

__all__ = ["HISTORY_PARAMS", "add_runs", "clear_history", "history", "next_run"]

#: The parameter columns of a history row, in order.
HISTORY_PARAMS = ("run", "label", "cell")

_lock = threading.Lock()
_records: list[RunRecord] = []
_runs = 0


def next_run() -> int:
    """A new invocation number (1, 2, ...), so the rows of one ``%%mlxmem -r N`` can be grouped."""
    global _runs
    with _lock:
        _runs += 1
        return _runs


def add_runs(records: Iterable[RunRecord]) -> None:
    """Add measured runs to the session's history."""
    with _lock:
        _records.extend(records)


def history() -> pd.DataFrame:
    """One row per ``%%mlxmem`` run in this session (label, first line of the cell, limits, times,
    memory before/after/peak, process memory, error); columns as in :func:`mlxtune.record.runs_frame`.
    """
    with _lock:
        records = list(_records)
    return runs_frame(records, params=HISTORY_PARAMS)


def clear_history() -> None:
    """Forget the runs recorded so far."""
    with _lock:
        _records.clear()
