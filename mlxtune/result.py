"""``SweepResult``: the runs of one sweep, and their analysis, computed once.

It holds data (the tidy runs frame and a little metadata) and reads its analysis from the layers
below: the summary from ``stats``, the decision from ``decision``, words from ``view``. Each is
computed on first use and kept, so a report that shows the summary seven times computes it once. A
result is frozen: build a new one (``dataclasses.replace``) rather than change one, and do not
change its ``runs`` frame in place. A result loaded from disk behaves exactly like a fresh one;
nothing here touches MLX.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlxtune import stats, store
from mlxtune.decision import TOLERANCE, Decision, Noise, decide
from mlxtune.record import SCHEMA_VERSION, RunRecord, runs_frame, timelines_frame
from mlxtune.units import parse_size

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from mlxtune.advice import Recommendation
    from mlxtune.present import Summary

__all__ = ["SweepResult"]


@dataclasses.dataclass(frozen=True, eq=False)
class SweepResult:
    """The runs of a sweep, one row each (see ``mlxtune.record.runs_frame``), and their context.

    ``params`` names the grid axes (always starting with ``cache_limit``); ``complete`` is False
    when the sweep was stopped early (Ctrl-C, Stop, ``on_error="raise"``, a run abandoned after its
    timeout, a failing teardown) and ``stop_reason`` then says why in one sentence; an adaptive
    sweep that ended by itself is complete, and ``stop_reason`` says why it stopped where it did.
    ``workload`` describes what was measured; ``environment`` is
    ``mlxtune.environment.environment()`` at the start; ``timelines`` holds each run's memory over
    time (``mlxtune.record.timelines_frame``; ``run`` is the row in ``runs``). Two results are equal
    when every field, every run and every sample is.
    """

    runs: pd.DataFrame
    params: list[str]
    label: str = "sweep"
    workload: str = ""
    unit: str = "runs"
    complete: bool = True
    planned_runs: int = 0
    stop_reason: str = ""
    environment: dict[str, Any] = dataclasses.field(default_factory=dict)
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    timelines: pd.DataFrame = dataclasses.field(default_factory=lambda: timelines_frame([]))
    blocks: pd.DataFrame = dataclasses.field(default_factory=lambda: runs_frame([]))

    def __post_init__(self) -> None:
        object.__setattr__(self, "_memo", {})  # the analysis, computed on first use (not a field)

    @classmethod
    def from_records(cls, records: list[RunRecord], params: list[str], **fields: Any) -> SweepResult:
        """A result from measured records in their order: whole runs into ``runs`` (with their
        timelines), blocks of the paired design into ``blocks``; the unit is the first successful one's."""
        runs = [r for r in records if not r.block]
        blocks = [r for r in records if r.block]
        unit = next((r.unit for r in [*blocks, *runs] if not r.error), "runs")
        return cls(runs=runs_frame(runs, params[1:]), params=params, unit=unit,
                   timelines=timelines_frame(runs), blocks=runs_frame(blocks, params[1:] if blocks else ()),
                   **fields)

    @property
    def design(self) -> str:
        """"paired" when speed was compared inside runs (blocks, :mod:`mlxtune.paired`), else "runs"."""
        return "paired" if len(self.blocks) else "runs"

    @property
    def speed_rows(self) -> pd.DataFrame:
        """The rows speed is measured on: the blocks of a paired sweep, else the runs."""
        return self.blocks if len(self.blocks) else self.runs

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SweepResult):
            return NotImplemented
        frames = ("runs", "timelines", "blocks")
        fields = [f.name for f in dataclasses.fields(self) if f.name not in frames]
        return all(getattr(self, f) == getattr(other, f) for f in fields) and all(
            getattr(self, f).equals(getattr(other, f)) for f in frames)

    __hash__ = None  # type: ignore[assignment]  # equal results need not be the same object

    def _remember(self, key: Any, compute: Callable[[], Any]) -> Any:
        memo: dict[Any, Any] = self._memo  # type: ignore[attr-defined]
        if key not in memo:
            memo[key] = compute()
        return memo[key]

    # -- analysis (stats, decision) ------------------------------------------------------------
    def summary_frame(self) -> pd.DataFrame:
        """One row per grid point, in numbers: median throughput with IQR and 95% CI, footprint, failures.

        The column names are a contract, listed in the docstring of ``mlxtune.stats``. Computed
        once; a copy is returned, so changing it changes nothing here. In a paired sweep the speed
        columns come from the blocks and the memory columns from whole runs where a point had one
        (``memory_from`` says which: :func:`mlxtune.stats.summarize_paired`).
        """
        return self._summary().copy()

    def summary(self) -> Summary:
        """The summary for people, one row per grid point, as the reports show it: median speed, speed
        relative to the best with its bounds and verdict, spread, memory as sizes, limits as words.
        ``.raw`` holds the numbers (:meth:`summary_frame`)."""
        from mlxtune.present import summary

        return summary(self)

    def decision(self, budget: int | str | None = None, tolerance: float = TOLERANCE) -> Decision:
        """The rule's verdict on every point (``mlxtune.decision.decide``), computed once per budget."""
        limit = None if budget is None else parse_size(budget)
        key = ("decision", limit, tolerance)
        return self._remember(key, lambda: decide(self.speed_rows, self._summary(), self.params,
                                                  tolerance=tolerance, budget=limit,
                                                  paired=self.design == "paired"))

    def noise(self) -> Noise:
        """How steady the runs were (spread, speed states, drift)."""
        return self.decision().noise

    def recommend(self, budget: int | str | None = None,
                  tolerance: float = TOLERANCE) -> Recommendation:
        """The smallest cache limit shown as fast as the best (within ``tolerance``) and in ``budget``.

        See ``mlxtune.decision`` for the rule: a point counts only when the data shows it close to
        the best; otherwise the answer says it is undecided, and how many more rounds would decide.
        """
        from mlxtune.advice import recommendation

        return self._remember(("recommend", budget, tolerance),
                              lambda: recommendation(self.decision(budget, tolerance), self.unit))

    def _summary(self) -> pd.DataFrame:
        if self.design == "paired":
            paired = stats.summarize_paired
            return self._remember("summary", lambda: paired(self.blocks, self.runs, self.params))
        return self._remember("summary", lambda: stats.summarize(self.runs, self.params))

    # -- figures and files (mlxtune.plots, mlxtune.report) --------------------------------------
    def plot(self, kind: str = "tradeoff", **options: Any) -> Figure:
        """A matplotlib Figure: ``kind`` is "tradeoff", "throughput" or "memory"."""
        from mlxtune.plots import plot

        return plot(self, kind=kind, **options)

    def to_html(self, path: str | os.PathLike[str], **options: Any) -> str:
        """The self-contained HTML report (``mlxtune.report.write_html``); returns the path."""
        from mlxtune.report import write_html

        return write_html(self, path, **options)

    def to_markdown(self, path: str | os.PathLike[str], **options: Any) -> str:
        """The Markdown report with its figures beside it (``mlxtune.report.write_markdown``)."""
        from mlxtune.report import write_markdown

        return write_markdown(self, path, **options)

    def to_csv(self, path: str | os.PathLike[str]) -> str:
        """The runs frame as CSV (``mlxtune.store.write_csv``); returns the path."""
        return store.write_csv(self, path)

    def to_json(self, path: str | os.PathLike[str]) -> str:
        """Everything, reloadable with ``mlxtune.load`` (``mlxtune.store.write_json``); returns the path."""
        return store.write_json(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SweepResult:
        """The result saved at ``path`` by :meth:`to_json`, equal to the saved one.

        Only JSON is parsed, never code. A file that is not UTF-8 JSON, not an mlxtune results
        file, from a newer mlxtune, or inconsistent inside raises one ValueError naming the file
        and the problem (``mlxtune.store.read``). A missing file raises FileNotFoundError.
        """
        return cls(**store.read(path))

    # -- display --------------------------------------------------------------------------------
    @property
    def failed_runs(self) -> int:
        return int((self.runs["error"] != "").sum()) if len(self.runs) else 0

    @property
    def first_error(self) -> str:
        """The error text of the first failed run, or "" when none failed."""
        errors = self.runs.loc[self.runs["error"] != "", "error"] if len(self.runs) else []
        return str(errors.iloc[0]) if len(errors) else ""

    def __repr__(self) -> str:
        state = "complete" if self.complete else f"incomplete ({len(self.runs)} of {self.planned_runs} runs)"
        return (
            f"SweepResult(label={self.label!r}, params={self.params}, runs={len(self.runs)}, "
            f"failed={self.failed_runs}, {state})"
        )

    def __str__(self) -> str:
        """The result as the command line prints it: table, design, recommendation and its code."""
        from mlxtune.present import text_report

        return text_report(self)

    def _repr_html_(self) -> str:
        from mlxtune.report import result_html_fragment

        return result_html_fragment(self)
