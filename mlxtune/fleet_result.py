"""The same sweep on several hosts: each host's result, and one answer for all of them.

A cache limit ships to every device an app runs on, so the fleet's answer is the smallest limit
that is shown as fast as the best on every host, within each host's memory budget
(:func:`mlxtune.decision.fleet_choice`); each host keeps its own recommendation too.
:func:`mlxtune.fleet.sweep` makes these; they save to one JSON file and load back equal.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlxtune import store
from mlxtune.decision import TOLERANCE
from mlxtune.result import SweepResult
from mlxtune.units import parse_size

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from mlxtune.advice import FleetRecommendation

__all__ = ["HOST_COLUMN", "FleetResult"]

#: The column that says which host measured a run, first in :attr:`FleetResult.runs`.
HOST_COLUMN = "host"

Budgets = int | str | Mapping[str, int | str | None] | None


@dataclasses.dataclass(frozen=True, eq=False)
class FleetResult:
    """One sweep per host (or engine), run with the same settings.

    ``results`` maps a host name to its :class:`~mlxtune.result.SweepResult` (each carries its
    host's environment: chip, memory, backend, versions); ``failures`` maps a host that gave no
    result to why (an engine lost mid-sweep, an error outside the sweep, stopped before its turn).
    ``complete`` is False when the fleet sweep was stopped (Ctrl-C, ``stop``), ``stop_reason`` then
    says so. Two fleet results are equal when every field and every host's result is.
    """

    results: dict[str, SweepResult]
    failures: dict[str, str] = dataclasses.field(default_factory=dict)
    label: str = "fleet"
    complete: bool = True
    stop_reason: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "_memo", {})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FleetResult):
            return NotImplemented
        return (self.results == other.results and self.failures == other.failures
                and (self.label, self.complete, self.stop_reason)
                == (other.label, other.complete, other.stop_reason))

    __hash__ = None  # type: ignore[assignment]

    def _remember(self, key: Any, compute: Callable[[], Any]) -> Any:
        memo: dict[Any, Any] = self._memo  # type: ignore[attr-defined]
        if key not in memo:
            memo[key] = compute()
        return memo[key]

    @property
    def hosts(self) -> list[str]:
        """Every host asked, measured or not, in the order they were given."""
        return [*self.results, *(h for h in self.failures if h not in self.results)]

    @property
    def runs(self) -> pd.DataFrame:
        """Every host's runs in one frame, ``host`` first (see :func:`mlxtune.record.runs_frame`)."""
        def build() -> pd.DataFrame:
            frames = [r.runs.assign(**{HOST_COLUMN: host}) for host, r in self.results.items()]
            if not frames:
                return pd.DataFrame(columns=[HOST_COLUMN])
            merged = pd.concat(frames, ignore_index=True)
            return merged[[HOST_COLUMN, *(c for c in merged.columns if c != HOST_COLUMN)]]
        return self._remember("runs", build)

    @property
    def environments(self) -> pd.DataFrame:
        """One row per measured host: where its runs were measured (``mlxtune.environment``)."""
        return pd.DataFrame([{HOST_COLUMN: host, **r.environment} for host, r in self.results.items()])

    def budgets(self, budget: Budgets) -> dict[str, int | None]:
        """Each measured host's budget in bytes: one size for all, or a mapping host -> size."""
        if not isinstance(budget, Mapping):
            size = None if budget is None else parse_size(budget)
            return {host: size for host in self.results}
        unknown = sorted(set(map(str, budget)) - set(self.hosts))
        if unknown:
            raise ValueError(f"budget names hosts that are not in this fleet result: {', '.join(unknown)} "
                             f"(hosts: {', '.join(self.hosts)})")
        return {host: None if budget.get(host) is None else parse_size(budget[host])  # type: ignore[arg-type]
                for host in self.results}

    def recommend(self, budget: Budgets = None, tolerance: float = TOLERANCE) -> FleetRecommendation:
        """The smallest cache limit shown fast on every host within its budget, and each host's own."""
        from mlxtune.advice import fleet_recommendation

        # keyed by the budgets as bytes: "90MB" and 90_000_000 are one budget, and one answer
        return self._remember(("recommend", tuple(self.budgets(budget).items()), tolerance),
                              lambda: fleet_recommendation(self, self.budgets(budget), tolerance))

    # -- display and files --------------------------------------------------------------------
    def plot(self, kind: str = "tradeoff", **options: Any) -> Figure:
        """One curve per host ("tradeoff": speed against footprint, or "throughput" against limit)."""
        from mlxtune.plots import fleet_plot

        return fleet_plot(self, kind, **options)

    def to_json(self, path: str | os.PathLike[str]) -> str:
        """Save every host's runs, environment and the failures; :meth:`load` reads it back equal."""
        return store.write_fleet_json(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FleetResult:
        """The fleet result saved at ``path`` by :meth:`to_json` (a ValueError names a bad file)."""
        return cls._from_fields(store.read_fleet(path))

    @classmethod
    def _from_fields(cls, fields: dict[str, Any]) -> FleetResult:
        results = {host: SweepResult(**saved) for host, saved in fields["results"].items()}
        return cls(**{**fields, "results": results})

    def to_csv(self, path: str | os.PathLike[str]) -> str:
        """Every host's raw runs, ``host`` first (cells that would be formulas are quoted)."""
        return store.write_fleet_csv(self, path)

    def to_html(self, path: str | os.PathLike[str], **options: Any) -> str:
        """A self-contained HTML report: the fleet's answer, a table of hosts, one curve per host."""
        from mlxtune.report import write_fleet_html

        return write_fleet_html(self, path, **options)

    def to_markdown(self, path: str | os.PathLike[str], **options: Any) -> str:
        """The same report as Markdown, its figure as a PNG beside it."""
        from mlxtune.report import write_fleet_markdown

        return write_fleet_markdown(self, path, **options)

    def __repr__(self) -> str:
        runs = sum(len(r.runs) for r in self.results.values())
        failed = f", {len(self.failures)} failed" if self.failures else ""
        return f"<FleetResult {self.label!r}: {len(self.results)} hosts{failed}, {runs} runs>"

    def _repr_html_(self) -> str:
        from mlxtune.report import fleet_html_fragment

        return fleet_html_fragment(self)


def load(path: str | os.PathLike[str]) -> SweepResult | FleetResult:
    """``mlxtune.load``: the result saved at ``path``: a :class:`~mlxtune.result.SweepResult`, or a
    :class:`FleetResult` when the file holds one sweep per host. Only JSON is parsed, never code; a
    bad file raises one ValueError naming it (see :meth:`SweepResult.load`)."""
    document = store.read_document(path)
    if store.is_fleet_document(document):
        return FleetResult._from_fields(store.fleet_from_document(document, os.fspath(path)))
    return SweepResult(**store.from_document(document, os.fspath(path)))
