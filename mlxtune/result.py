"""``SweepResult``: the runs of one sweep and everything derived from them.

It holds data only (the tidy runs frame and a little metadata); statistics live in ``stats``,
figures in ``plots`` and files in ``report``, so a result loaded from disk behaves exactly like a
fresh one and nothing here touches MLX.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlxtune.measure import SCHEMA_VERSION

if TYPE_CHECKING:
    import os

    from matplotlib.figure import Figure

    from mlxtune.stats import Recommendation

__all__ = ["SweepResult"]


@dataclasses.dataclass
class SweepResult:
    """The runs of a sweep, one row each (see ``mlxtune.measure.runs_frame``), and their context.

    ``params`` names the grid axes (always starting with ``cache_limit``); ``complete`` is False
    when the sweep was stopped early (Ctrl-C, Stop, ``on_error="raise"``, a run abandoned after its
    timeout) and ``stop_reason`` then says why in one sentence; ``workload`` describes what was
    measured; ``environment`` is ``mlxtune.environment.environment()`` at the start.
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

    # -- statistics (mlxtune.stats) -------------------------------------------------------------
    def summary(self) -> pd.DataFrame:
        """One row per grid point: median throughput with IQR and 95% CI, footprint, failures.

        The column names are a contract, listed in the docstring of ``mlxtune.stats``.
        """
        from mlxtune.stats import summarize

        return summarize(self.runs, self.params)

    def best(self) -> pd.Series:
        """The summary row with the highest median throughput."""
        from mlxtune.stats import best

        return best(self.summary())

    def recommend(self, budget: int | str | None = None, tolerance: float = 0.05) -> Recommendation:
        """The smallest cache limit as fast as the best (within noise or ``tolerance``) and in budget."""
        from mlxtune.stats import recommend

        return recommend(self, budget=budget, tolerance=tolerance)

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
        """The runs frame as CSV (``mlxtune.report.write_csv``); returns the path."""
        from mlxtune.report import write_csv

        return write_csv(self, path)

    def to_json(self, path: str | os.PathLike[str]) -> str:
        """Everything, reloadable with ``mlxtune.load`` (``mlxtune.report.write_json``); returns the path."""
        from mlxtune.report import write_json

        return write_json(self, path)

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

    def _repr_html_(self) -> str:
        from mlxtune.report import result_html_fragment

        return result_html_fragment(self)
