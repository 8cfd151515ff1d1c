"""Recommendations: the decision's answer as a value people use, with its words and code to paste.

A :class:`Recommendation` (one sweep) or :class:`FleetRecommendation` (several hosts) is built from a
:class:`~mlxtune.decision.Decision` by the words layer: ``reason`` is :func:`mlxtune.view.reason`'s
text, ``python_code`` and ``swift_code`` the lines that apply the limit. ``SweepResult.recommend`` and
``FleetResult.recommend`` hand their decisions here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlxtune import view
from mlxtune.decision import NO_RUNS, TOLERANCE, Decision, FleetChoice, fleet_choice

if TYPE_CHECKING:
    from mlxtune.fleet_result import FleetResult

__all__ = ["FleetRecommendation", "LimitAdvice", "Recommendation", "fleet_recommendation", "recommendation"]


class LimitAdvice:
    """What every recommendation offers from its ``cache_limit`` (None: none) and ``reason``."""

    cache_limit: int | None
    reason: str

    @property
    def found(self) -> bool:
        return self.cache_limit is not None

    @property
    def python_code(self) -> str:
        """The line that applies this limit in Python."""
        return view.python_code(self.cache_limit, self.reason)

    @property
    def swift_code(self) -> str:
        """The line that applies this limit in an app using MLX Swift."""
        return view.swift_code(self.cache_limit, self.reason)

    def __str__(self) -> str:
        return self.reason


@dataclasses.dataclass(frozen=True)
class Recommendation(LimitAdvice):
    """Which cache limit to ship, how sure the data is, and why in words.

    ``cache_limit`` is None when no point is shown fast yet, or nothing can be recommended (no
    successful run, nothing in budget); ``reason`` then says why. ``decided`` is True when every
    smaller limit is shown slower than the tolerance allows, so the answer will not change with
    more runs; when False, ``cache_limit`` (if any) is safe, and ``open_limits`` lists the smaller
    limits still undecided, which ``more_rounds`` more rounds would likely settle. ``ratio``,
    ``ratio_low`` and ``ratio_high`` are the chosen point's speed over the best's with its bounds.
    ``within_noise`` is True when every point is shown as fast as the best: the limit does not
    matter here.
    """

    cache_limit: int | None
    params: dict[str, Any]
    throughput: float
    footprint: int | None
    reason: str
    decided: bool = False
    ratio: float = math.nan
    ratio_low: float = math.nan
    ratio_high: float = math.nan
    open_limits: tuple[int, ...] = ()
    more_rounds: float = 0.0
    within_noise: bool = False
    unit: str = "runs"
    budget: int | None = None
    tolerance: float = TOLERANCE

    def to_dict(self) -> dict[str, Any]:
        """Plain values, as saved in a results file."""
        return dataclasses.asdict(self)


def recommendation(found: Decision, unit: str) -> Recommendation:
    """The decision's chosen point as a Recommendation, with its words."""
    points = found.points
    measured = points[points["verdict"] != NO_RUNS]
    words = view.reason(found, unit)
    if found.choice is None or not found.compared:
        smallest = int(measured["footprint"].min()) if len(measured) else None
        return Recommendation(None, {}, math.nan, smallest, words, unit=unit, budget=found.budget,
                              tolerance=found.tolerance, more_rounds=found.more_rounds)
    chosen = points.loc[found.choice]
    open_points = found.undecided
    return Recommendation(
        cache_limit=int(chosen["cache_limit"]),
        params={p: _plain(chosen[p]) for p in found.params if p != "cache_limit"},
        throughput=float(chosen["speed"]),
        footprint=int(chosen["footprint"]),
        reason=words,
        decided=found.decided,
        ratio=float(chosen["ratio"]),
        ratio_low=float(chosen["ratio_low"]),
        ratio_high=float(chosen["ratio_high"]),
        open_limits=tuple(int(v) for v in open_points["cache_limit"]),
        more_rounds=found.more_rounds,
        within_noise=found.all_fast,
        unit=unit,
        budget=found.budget,
        tolerance=found.tolerance,
    )

@dataclasses.dataclass(frozen=True)
class FleetRecommendation(LimitAdvice):
    """One cache limit for every host (``cache_limit`` None when none is shown fast on all), and each
    host's own recommendation in ``hosts``. ``reason`` says why in sentences."""

    cache_limit: int | None
    params: dict[str, Any]
    decided: bool
    hosts: dict[str, Recommendation]
    reason: str
    choice: FleetChoice


def fleet_recommendation(fleet: FleetResult, budgets: Mapping[str, int | None],
                         tolerance: float) -> FleetRecommendation:
    """:meth:`FleetResult.recommend`: the limit every host shows fast within its budget, each host's own
    recommendation, and why in words."""
    decisions = {h: r.decision(budgets[h], tolerance) for h, r in fleet.results.items()}
    choice = fleet_choice({**decisions, **{h: None for h in fleet.failures if h not in decisions}})
    point = choice.point or {}
    return FleetRecommendation(
        cache_limit=point.get("cache_limit"),
        params={k: v for k, v in point.items() if k != "cache_limit"},
        decided=choice.decided,
        hosts={h: r.recommend(budgets[h], tolerance) for h, r in fleet.results.items()},
        reason=view.fleet_reason(choice, decisions, fleet.failures, tolerance),
        choice=choice,
    )


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
