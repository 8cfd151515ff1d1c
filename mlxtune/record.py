"""The one record shape every part of mlxtune shares: what a workload returns, one measured run (or
block) as a :class:`RunRecord`, and the tidy frames built from records.

The magic's history, sweeps, statistics, plots, reports and saved files all hold runs as rows of one
pandas frame built by :func:`runs_frame`: plain columns (bytes as int, seconds as float), one column
per parameter (``cache_limit`` always, plus any swept axis or context such as a magic's label), and
``error``. Nothing here touches MLX, so numbers and files can be read without it; measuring a run is
:mod:`mlxtune.measure`.
"""

from __future__ import annotations

import dataclasses
import math
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "FILE_COLUMNS",
    "MEASURED_COLUMNS",
    "SAMPLED_COLUMNS",
    "SAMPLE_COLUMNS",
    "SCHEMA_VERSION",
    "TIMELINE_COLUMNS",
    "RunRecord",
    "Samples",
    "Work",
    "Workload",
    "as_work",
    "describe_error",
    "error_detail",
    "fill_unsampled",
    "runs_frame",
    "timelines_frame",
]

#: The columns of a timeline frame: seconds since the run started, and bytes.
SAMPLE_COLUMNS = ("seconds", "active", "cache", "process")

#: Version of the saved shape of runs; bump it when a column changes meaning. Version 2 added
#: ``footprint_peak`` and ``process_peak`` (sampled during each run) and the runs' timelines; version 3
#: the blocks of the paired design (``blocks``, ``block_columns``) beside the runs; version 4 each run's
#: ``error_detail``.
SCHEMA_VERSION = 4

#: Columns every run has, after its parameter columns, with what they hold.
MEASURED_COLUMNS: dict[str, str] = {
    "repeat": "index of this run among the repeats of its grid point (int)",
    "seconds": "time of the measured work in seconds, the workload's own timing when it gives one (float)",
    "wall_seconds": "wall time of the whole run, after synchronizing (float)",
    "units": "how much work the run did, e.g. tokens (float)",
    "unit": "what `units` counts, e.g. 'tokens' or 'runs' (str)",
    "throughput": "units per second (float; NaN for a failed run)",
    "peak_memory": "largest MLX active memory during the run, bytes (int)",
    "active_before": "MLX active memory before the run, bytes (int)",
    "active_after": "MLX active memory after the run, bytes (int)",
    "cache_before": "MLX cache memory before the run, bytes (int)",
    "cache_after": "MLX cache memory held at the end of the run, bytes (int)",
    "process_rss": "resident memory of the process after the run as the OS sees it, bytes (int)",
    "footprint_peak": "largest MLX active + cache sampled during the run, >= peak_memory, bytes (int)",
    "process_peak": "largest process memory sampled during the run (macOS: physical footprint, as jetsam "
                    "counts; elsewhere resident set), bytes (int)",
    "memory_limit": "MLX memory limit in force during the run, bytes (int)",
    "started_at": "when the run started, seconds since the epoch (float)",
    "error": "'' for a run that finished, else the exception's type and the first line of its message (str)",
    "error_detail": "'' for a run that finished, else the whole error: where it was raised and every line "
                    "of its message, as Python prints it (str)",
}
#: Columns a result's CSV puts before the runs' own (which result, which row, run or block): no grid axis
#: or metric may take these names.
FILE_COLUMNS = ("label", "measured_as", "run")
#: What a sampled column is, for a row that has none (saved before sampling, or built by hand): the
#: footprint at the start and end of the run, and the process's resident memory after it.
_UNSAMPLED: dict[str, Callable[[pd.DataFrame], pd.Series]] = {
    "footprint_peak": lambda frame: frame["peak_memory"] + frame["cache_after"],
    "process_peak": lambda frame: frame["process_rss"],
}
#: The columns that come from sampling during a run.
SAMPLED_COLUMNS = tuple(_UNSAMPLED)
#: Columns held as int64 in the runs frame: the cache limit and the measured columns marked (int).
_INT_COLUMNS = ("cache_limit", *(name for name, what in MEASURED_COLUMNS.items() if what.endswith("(int)")))


class Workload:
    """Optional base class of a workload: implement ``__call__``; the other hooks default to no-ops.

    A sweep calls ``setup()`` once before the warm-up and ``teardown()`` once after the runs (also
    after errors and Ctrl-C), both outside the timed part; ``describe()`` names it in results.
    A workload that also has ``steps()`` (an iterator, one step of work per ``next()``, yielding
    the units it did) runs in steps: a sweep then compares limits inside runs (:mod:`mlxtune.paired`).
    """

    def setup(self) -> None:
        """Called once before the warm-up, outside the timed part (load a model, build inputs)."""

    def teardown(self) -> None:
        """Called once after the workload's runs, also after errors and Ctrl-C."""

    def describe(self) -> str:
        """One line naming what is measured, stored as ``SweepResult.workload`` (default: the class name)."""
        return type(self).__name__

    def __call__(self) -> Any:
        """The measured work: return a count of work units, a :class:`Work` or None (one run)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.describe()


@dataclasses.dataclass(frozen=True)
class Work:
    """What a workload may return instead of a plain count.

    ``units`` of ``unit`` were done; ``seconds`` (optional) is the workload's own timing of the
    part that counts (e.g. decoding only); ``metrics`` become extra columns (e.g. prompt tokens/s).
    """

    units: float
    unit: str = "runs"
    seconds: float | None = None
    metrics: Mapping[str, float] = dataclasses.field(default_factory=dict)


def as_work(value: object) -> Work:
    """Interpret a workload's return value: a Work, a count, or None (one run).

    Raises TypeError or ValueError, naming the field, for anything that is not a count of work: a
    non-number or negative ``units``, a ``seconds`` that is not a positive number, ``metrics`` that
    are not a mapping of names to numbers. :func:`measure` records that as the run's failure.
    """
    if value is None:
        return Work(units=1.0)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = Work(units=float(value))
    if not isinstance(value, Work):
        units = getattr(value, "units", None)
        if units is None:
            raise TypeError(
                f"a workload must return a number of work units, a Work or None, not {type(value).__name__}"
            )
        value = Work(units=units, unit=getattr(value, "unit", "runs"),
                     seconds=getattr(value, "seconds", None), metrics=getattr(value, "metrics", None) or {})
    return _checked(value)


def _number(value: object) -> float | None:
    """``value`` as a finite float, or None when it is not a real finite number (bools are not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _checked(work: Work) -> Work:
    units, seconds = _number(work.units), _number(work.seconds)
    if units is None or units < 0:
        raise TypeError(f"Work.units must be a finite number >= 0, not {work.units!r}")
    if not isinstance(work.unit, str) or not work.unit:
        raise TypeError(f"Work.unit must be a non-empty string such as 'tokens', not {work.unit!r}")
    if work.seconds is not None and (seconds is None or seconds <= 0):
        raise TypeError(f"Work.seconds must be a number of seconds > 0 or None, not {work.seconds!r}")
    if not isinstance(work.metrics, Mapping):
        raise TypeError(f"Work.metrics must be a dict of name -> number, not {type(work.metrics).__name__}")
    metrics: dict[str, float] = {}
    for name, metric in work.metrics.items():
        number = not isinstance(metric, bool) and isinstance(metric, (int, float))
        if not isinstance(name, str) or not name or not number:
            raise TypeError(f"Work.metrics must map names to numbers; got {name!r}: {metric!r}")
        metrics[name] = float(metric)  # NaN stays: "not measured this run"
    return Work(units=units, unit=work.unit, seconds=seconds, metrics=metrics)


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """One measured run: its parameters, what it did, how long it took and the memory it used."""

    params: Mapping[str, Any]
    repeat: int
    seconds: float
    wall_seconds: float
    units: float
    unit: str
    peak_memory: int
    active_before: int
    active_after: int
    cache_before: int
    cache_after: int
    process_rss: int
    cache_limit: int
    memory_limit: int
    started_at: float
    error: str = ""
    error_detail: str = ""
    metrics: Mapping[str, float] = dataclasses.field(default_factory=dict)
    footprint_peak: int = 0
    process_peak: int = 0
    samples: Samples | None = dataclasses.field(default=None, compare=False, repr=False)
    #: True for a block of the paired design (``repeat`` is then its cycle), False for a whole run.
    block: bool = False

    @property
    def throughput(self) -> float:
        if self.error or not self.seconds or self.seconds <= 0:
            return math.nan
        return self.units / self.seconds

    def to_row(self) -> dict[str, Any]:
        """A flat dict: ``cache_limit``, the parameters, the measured columns, the metrics."""
        row: dict[str, Any] = {"cache_limit": self.cache_limit, **self.params}
        for name in MEASURED_COLUMNS:
            row[name] = self.throughput if name == "throughput" else getattr(self, name)
        row.update(self.metrics)
        return row



def describe_error(exc: BaseException) -> str:
    """One line naming an exception: its type and the first line of its message (``TypeError: message``),
    with "..." when the message goes on; a note Python adds below it is not the message."""
    message = str(exc).strip()
    lines = message.splitlines()
    if not lines:
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return text.splitlines()[0] if text else type(exc).__name__
    return f"{type(exc).__name__}: {lines[0]}" + (" ..." if len(lines) > 1 else "")


#: The most characters of an error's full text a record keeps (its end: the message and the innermost
#: frames), so a deep recursion cannot swell a saved result.
ERROR_DETAIL_CHARS = 8_000


def error_detail(exc: BaseException) -> str:
    """An exception in full, as Python prints it (traceback, type, every line of the message, notes),
    cut to its last :data:`ERROR_DETAIL_CHARS` characters."""
    text = "".join(traceback.format_exception(exc)).rstrip()
    return text if len(text) <= ERROR_DETAIL_CHARS else "...\n" + text[-ERROR_DETAIL_CHARS:]


#: Samples kept per run in a result's timelines: enough to see the cache fill and stop at its limit.
TIMELINE_SAMPLES = 200
#: The columns of a result's timelines: the run (its row in the runs frame), then the samples'.
TIMELINE_COLUMNS = ("run", *SAMPLE_COLUMNS)


def timelines_frame(records: Iterable[RunRecord], most: int = TIMELINE_SAMPLES) -> pd.DataFrame:
    """Every run's memory over time, thinned to ``most`` samples a run, in one long frame: ``run`` (the
    record's position, as in :func:`runs_frame`), ``seconds`` since it started, ``active``, ``cache``
    and ``process`` memory in bytes."""
    parts = [np.column_stack([np.full(len(kept), i), kept.values]) for i, r in enumerate(records)
             if r.samples is not None and len(kept := r.samples.thinned(most))]
    values = np.concatenate(parts) if parts else np.empty((0, len(TIMELINE_COLUMNS)))
    return pd.DataFrame({name: values[:, j] if name == "seconds" else values[:, j].astype(np.int64)
                         for j, name in enumerate(TIMELINE_COLUMNS)})


def fill_unsampled(frame: pd.DataFrame) -> pd.DataFrame:
    """Runs measured before runs were sampled (schema version 1, rows built by hand) get their
    sampled columns from the snapshots: the footprint at the end, the resident memory after."""
    for name, fallback in _UNSAMPLED.items():
        if name not in frame:
            frame[name] = fallback(frame)
        elif frame[name].isna().any():
            frame[name] = frame[name].fillna(fallback(frame))
    return frame


def runs_frame(records: Iterable[RunRecord | Mapping[str, Any]], params: Iterable[str] = ()) -> pd.DataFrame:
    """Records (or rows from :meth:`RunRecord.to_row`) as the tidy runs frame, in a fixed column order.

    Columns: ``cache_limit``, then ``params`` in order, then :data:`MEASURED_COLUMNS`, then any
    workload metrics. A parameter that is also a measured column (``memory_limit`` swept as an axis)
    appears once, among the parameters. An empty input gives an empty frame with those columns.
    """
    rows = [r.to_row() if isinstance(r, RunRecord) else dict(r) for r in records]
    leading = ["cache_limit", *[p for p in params if p != "cache_limit"]]
    known = [*leading, *[c for c in MEASURED_COLUMNS if c not in leading]]
    extra = sorted({k for row in rows for k in row} - set(known))
    columns = [*known, *extra]
    data: dict[str, Any] = {name: [row.get(name) for row in rows] for name in columns}
    for name in ("error", "error_detail", "unit"):
        data[name] = ["" if v is None else str(v) for v in data[name]]
    if any(_has_gaps(data[name]) for name in SAMPLED_COLUMNS):  # rows built by hand, or saved before
        frame = fill_unsampled(pd.DataFrame(data, columns=columns))
        data = {name: frame[name].tolist() if name in _INT_COLUMNS else frame[name] for name in columns}
    for name in _INT_COLUMNS:  # whole numbers stay int64 (a column with a gap is float, with NaN)
        if data[name] and not _has_gaps(data[name]):
            data[name] = np.asarray(data[name], dtype=np.int64)
    # built from typed columns in one go: a cell's one-run frame is on every %%mlxmem's path
    return pd.DataFrame(data, columns=columns)


def _has_gaps(values: Sequence[Any]) -> bool:
    """Whether a column's values have a None or NaN (no value)."""
    return any(v is None or v != v for v in values)


class Samples:
    """The samples of one run, as arrays (see :data:`SAMPLE_COLUMNS`); :meth:`frame` gives a frame."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def __len__(self) -> int:
        return len(self.values)

    @property
    def footprint_peak(self) -> int:
        """The largest active + cache seen, bytes (0 with no samples)."""
        return int((self.values[:, 1] + self.values[:, 2]).max()) if len(self) else 0

    @property
    def process_peak(self) -> int:
        """The largest process memory seen, bytes (0 with no samples)."""
        return int(self.values[:, 3].max()) if len(self) else 0

    def thinned(self, most: int) -> Samples:
        """At most ``most`` samples, evenly spaced, always keeping the first, the last and the peak."""
        if len(self) <= most:
            return self
        keep = set(np.linspace(0, len(self) - 1, most - 1).round().astype(int))
        keep.add(int((self.values[:, 1] + self.values[:, 2]).argmax()))
        return Samples(self.values[sorted(keep)])

    def frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.values, columns=list(SAMPLE_COLUMNS))
        return frame.astype({name: "int64" for name in SAMPLE_COLUMNS[1:]})
