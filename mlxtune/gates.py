"""What a comparison finds, as values: the gates CI checks, where they were crossed, and what makes
two results less comparable than they look.

No results and no words here: :mod:`mlxtune.comparison` finds these, :mod:`mlxtune.view` words them.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import pandas as pd

__all__ = ["METRICS", "Difference", "Gate", "GateFinding", "GateResult", "parse_gate"]

#: What a gate can watch, and the comparison column holding its relative change.
METRICS = {"throughput": "throughput_change", "footprint": "footprint_change", "peak": "peak_change"}
_GATE_FORMS = (
    "METRIC<PERCENT% or METRIC>PERCENT%, with METRIC one of throughput, footprint, peak and a signed "
    "percent, e.g. throughput<-5% or peak>+10%"
)
_GATE_RE = re.compile(
    r"^\s*(?P<metric>[a-z]+)\s*(?P<op>[<>])\s*(?P<percent>(?P<sign>[+-]?)(?:\d+(?:\.\d*)?|\.\d+))\s*%\s*$"
)


@dataclasses.dataclass(frozen=True)
class Gate:
    """"throughput<-5%": fail when throughput changed by less than -5% (and the change is real)."""

    metric: str
    op: str
    percent: float

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.percent:+g}%"

    def crossed(self, change: float) -> bool:
        if not math.isfinite(change):
            return False
        value = change * 100
        return value < self.percent if self.op == "<" else value > self.percent

    def shown(self, row: pd.Series) -> bool:
        """Whether the whole interval of the metric's ratio lies past the threshold at this point."""
        bound = row[f"{self.metric}_ratio_high" if self.op == "<" else f"{self.metric}_ratio_low"]
        return self.crossed(bound - 1)


def parse_gate(text: str | Gate) -> Gate:
    """A gate from its text; ValueError naming the text and the accepted form."""
    if isinstance(text, Gate):
        return text
    match = _GATE_RE.match(text) if isinstance(text, str) else None
    if match is None or match["metric"] not in METRICS:
        raise ValueError(f"invalid gate {text!r}: expected {_GATE_FORMS}")
    if not match["sign"]:
        gate = f"{match['metric']}{match['op']}"
        number = match["percent"]
        raise ValueError(f"invalid gate {text!r}: give the threshold a sign, {gate}-{number}% for a drop or "
                         f"{gate}+{number}% for a rise")
    return Gate(match["metric"], match["op"], float(match["percent"]))


@dataclasses.dataclass(frozen=True)
class GateFinding:
    """Where a gate's threshold was crossed: a grid point (``point``: parameter -> value, the host
    first for fleets) whose metric changed by ``change`` (``a`` -> ``b``), or whose new runs failed
    more often (``failed``: failed and all runs, new then baseline), or a host the new result lacks
    (``lost``: why)."""

    point: dict[str, Any]
    change: float = math.nan
    a: float = math.nan
    b: float = math.nan
    failed: tuple[int, int, int, int] | None = None
    lost: str = ""


@dataclasses.dataclass(frozen=True)
class GateResult:
    """A gate checked against a comparison: where it failed, and where it was crossed only within noise."""

    gate: Gate
    failures: list[GateFinding]
    within_noise: list[GateFinding]

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclasses.dataclass(frozen=True)
class Difference:
    """Something that makes two results less comparable than they look: ``what`` differs (workload,
    design, backend, device, mlx), as ``a`` in the baseline and ``b`` in the new result; ``host``
    for a fleet's host ("" for two sweeps)."""

    what: str
    a: str
    b: str
    host: str = ""
