"""Two sweep results side by side: what changed, whether the change is real, and CI gates on it.

A difference is called a change only when it beats both a factor and a significance test on the
raw runs, as asv does, so noise is not reported as a regression. The test is the two-sided
Mann-Whitney U test (:func:`mlxtune.stats.is_significant`) where the numbers of runs allow it to
reach the level at all; with fewer runs (3 against 3 cannot go below p = 0.1) the samples must not
overlap (every run of one side beyond every run of the other), asv's fallback of non-overlapping
intervals. The throughput ratio's confidence interval is the Hodges-Lehmann interval of
:func:`mlxtune.stats.ratio_ci`.

``mlxtune.compare`` (the package attribute) is the function :func:`compare`; import helpers with
``from mlxtune.compare import parse_gate``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlxtune.report import load
from mlxtune.result import SweepResult
from mlxtune.stats import is_significant, ratio_ci
from mlxtune.units import format_size

__all__ = ["METRICS", "Gate", "GateResult", "as_result", "check_gates", "compare", "comparison_text",
           "describe_point", "parse_gate"]

#: What a gate can watch, and the comparison column holding its relative change.
METRICS = {"throughput": "throughput_change", "footprint": "footprint_change", "peak": "peak_change"}
_GATE_FORMS = (
    "METRIC<PERCENT% or METRIC>PERCENT%, with METRIC one of throughput, footprint, peak and a signed "
    "percent, e.g. throughput<-5% or peak>+10%"
)
_GATE_RE = re.compile(
    r"^\s*(?P<metric>[a-z]+)\s*(?P<op>[<>])\s*(?P<percent>[+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*%\s*$"
)


def as_result(source: SweepResult | str | os.PathLike[str]) -> SweepResult:
    """A result, or the one saved at a path (see :func:`mlxtune.report.load`)."""
    if isinstance(source, SweepResult):
        return source
    if isinstance(source, (str, os.PathLike)):
        return load(source)
    raise TypeError(f"expected a SweepResult or the path of a saved one, not {type(source).__name__}")


def compare(
    a: SweepResult | str | os.PathLike[str],
    b: SweepResult | str | os.PathLike[str],
    *,
    factor: float = 1.05,
    alpha: float = 0.05,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """One row per grid point the two results share: ``b`` against the baseline ``a``.

    Columns: the parameters; ``runs_a``/``runs_b``; ``throughput_a``/``_b`` (medians),
    ``throughput_ratio`` (b / a), ``throughput_ratio_low``/``_high`` (its ``confidence`` interval),
    ``throughput_change`` (ratio - 1); ``footprint_*`` and ``peak_*`` (largest over runs, bytes) with
    ``_diff`` (b - a, bytes) and ``_change`` (relative); for each metric ``_significant`` (the test
    in the module docstring at ``alpha``) and ``_changed`` (significant and the ratio beyond
    ``factor`` either way). ``attrs["labels"]`` holds the two labels.
    """
    if not factor >= 1:
        raise ValueError(f"factor must be a number of at least 1 (e.g. 1.05 for 5%), not {factor!r}")
    a, b = as_result(a), as_result(b)
    if set(a.params) != set(b.params):
        raise ValueError(f"the results have different grid axes ({a.params} and {b.params}): "
                         "compare results swept over the same parameters")
    params = list(a.params)
    summary_a, summary_b = a.summary(), b.summary()
    shared = summary_a.merge(summary_b, on=params, suffixes=("_a", "_b"), how="inner")
    rows = []
    for _, point in shared.iterrows():
        runs_a, runs_b = _runs_at(a.runs, params, point), _runs_at(b.runs, params, point)
        measured = _compare_point(point, runs_a, runs_b, factor, alpha, confidence)
        rows.append({p: point[p] for p in params} | measured)
    frame = pd.DataFrame(rows, columns=[*params, *_COLUMNS])
    frame.attrs["labels"] = [a.label, b.label]
    return frame


_COLUMNS = [
    "runs_a", "runs_b", "throughput_a", "throughput_b", "throughput_ratio", "throughput_ratio_low",
    "throughput_ratio_high", "throughput_change", "throughput_significant", "throughput_changed",
    *(f"{metric}_{part}" for metric in ("footprint", "peak")
      for part in ("a", "b", "diff", "change", "significant", "changed")),
]


def _runs_at(runs: pd.DataFrame, params: Sequence[str], point: pd.Series) -> pd.DataFrame:
    mask = np.ones(len(runs), dtype=bool)
    for name in params:
        mask &= (runs[name] == point[name]).to_numpy()
    return runs[mask]


def _compare_point(point: pd.Series, runs_a: pd.DataFrame, runs_b: pd.DataFrame, factor: float, alpha: float,
                   confidence: float) -> dict[str, Any]:
    ok_a, ok_b = runs_a[runs_a["error"] == ""], runs_b[runs_b["error"] == ""]
    speed_a, speed_b = point["throughput_median_a"], point["throughput_median_b"]
    ratio = speed_b / speed_a if speed_a > 0 else math.nan
    _, low, high = ratio_ci(ok_b["throughput"], ok_a["throughput"], confidence)
    significant = differs(ok_a["throughput"], ok_b["throughput"], alpha)
    row: dict[str, Any] = {
        "runs_a": len(runs_a), "runs_b": len(runs_b),
        "throughput_a": speed_a, "throughput_b": speed_b, "throughput_ratio": ratio,
        "throughput_ratio_low": low, "throughput_ratio_high": high, "throughput_change": ratio - 1,
        "throughput_significant": significant,
        "throughput_changed": significant and _beyond(ratio, factor),
    }
    def footprint(runs: pd.DataFrame) -> pd.Series:
        return runs["peak_memory"] + runs["cache_after"]

    per_run = {
        "footprint": (footprint(runs_a), footprint(runs_b), point["footprint_a"], point["footprint_b"]),
        "peak": (runs_a["peak_memory"], runs_b["peak_memory"], point["peak_memory_max_a"],
                 point["peak_memory_max_b"]),
    }
    for metric, (values_a, values_b, largest_a, largest_b) in per_run.items():
        memory_ratio = largest_b / largest_a if largest_a > 0 else math.nan
        memory_significant = differs(values_a, values_b, alpha)
        row |= {
            f"{metric}_a": int(largest_a), f"{metric}_b": int(largest_b),
            f"{metric}_diff": int(largest_b - largest_a),
            f"{metric}_change": memory_ratio - 1, f"{metric}_significant": memory_significant,
            f"{metric}_changed": memory_significant and _beyond(memory_ratio, factor),
        }
    return row


def differs(a: Sequence[float] | pd.Series, b: Sequence[float] | pd.Series, alpha: float = 0.05) -> bool:
    """Whether two samples of runs differ (see the module docstring for the rule)."""
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if len(x) < 2 or len(y) < 2:
        return False
    smallest_p = 2 / math.comb(len(x) + len(y), len(x))
    if smallest_p < alpha:
        return is_significant(x, y, alpha)
    return bool(x.max() < y.min() or y.max() < x.min())


def _beyond(ratio: float, factor: float) -> bool:
    return bool(math.isfinite(ratio) and (ratio > factor or ratio * factor < 1))


# -- gates --------------------------------------------------------------------------------------


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


def parse_gate(text: str | Gate) -> Gate:
    """A gate from its text; ValueError naming the text and the accepted form."""
    if isinstance(text, Gate):
        return text
    match = _GATE_RE.match(text) if isinstance(text, str) else None
    if match is None or match["metric"] not in METRICS:
        raise ValueError(f"invalid gate {text!r}: expected {_GATE_FORMS}")
    return Gate(match["metric"], match["op"], float(match["percent"]))


@dataclasses.dataclass(frozen=True)
class GateResult:
    """A gate checked against a comparison: the points that failed it, and those only within noise."""

    gate: Gate
    failures: list[str]
    within_noise: list[str]

    @property
    def passed(self) -> bool:
        return not self.failures

    def __str__(self) -> str:
        lines = [f"{'PASS' if self.passed else 'FAIL'} {self.gate}"]
        lines += [f"  failed at {text}" for text in self.failures]
        lines += [f"  crossed but within noise at {text}" for text in self.within_noise]
        return "\n".join(lines)


def check_gates(frame: pd.DataFrame, gates: Sequence[str | Gate]) -> list[GateResult]:
    """Check each gate at every shared grid point of a :func:`compare` frame.

    A gate fails where the change crosses its threshold and is significant. A point where every
    run of ``b`` failed while ``a`` measured fails any "throughput<..." gate.
    """
    parsed = [parse_gate(g) for g in gates]
    if parsed and frame.empty:
        raise ValueError("the two results share no grid point, so no gate can be checked")
    params = _params(frame)
    results = []
    for gate in parsed:
        failures, noisy = [], []
        for _, row in frame.iterrows():
            where = describe_point(row, params)
            change = row[METRICS[gate.metric]]
            lost = (gate.metric == "throughput" and gate.op == "<" and math.isnan(row["throughput_b"])
                    and not math.isnan(row["throughput_a"]))
            if lost:
                failures.append(f"{where}: every run failed in the new result")
            elif gate.crossed(change):
                text = f"{where}: {change:+.1%} ({_values(row, gate.metric)})"
                (failures if row[f"{gate.metric}_significant"] else noisy).append(text)
        results.append(GateResult(gate, failures, noisy))
    return results


def _params(frame: pd.DataFrame) -> list[str]:
    return list(frame.columns[: list(frame.columns).index("runs_a")])


def describe_point(row: pd.Series, params: Sequence[str]) -> str:
    """ "cache limit 16MB, dtype=q4"."""
    parts = []
    for name in params:
        value = row[name]
        if name in ("cache_limit", "memory_limit"):
            parts.append(f"{name.replace('_', ' ')} {format_size(int(value))}")
        else:
            parts.append(f"{name}={value}")
    return ", ".join(parts)


def _values(row: pd.Series, metric: str) -> str:
    if metric == "throughput":
        return f"{row['throughput_a']:.4g} -> {row['throughput_b']:.4g}/s"
    return f"{format_size(int(row[f'{metric}_a']))} -> {format_size(int(row[f'{metric}_b']))}"


def comparison_text(frame: pd.DataFrame) -> str:
    """A plain-text table of a comparison for the terminal; changes marked with "*"."""
    params = _params(frame)
    labels = frame.attrs.get("labels", ["a", "b"])
    lines = [f"{labels[0]} -> {labels[1]} ('*': a real change, beyond the factor and the noise)"]
    for _, row in frame.iterrows():
        speed = (f"throughput {row['throughput_a']:.4g} -> {row['throughput_b']:.4g} "
                 f"({row['throughput_change']:+.1%}, CI {row['throughput_ratio_low'] - 1:+.1%}.."
                 f"{row['throughput_ratio_high'] - 1:+.1%}){'*' if row['throughput_changed'] else ''}")
        memory = ", ".join(
            f"{m} {format_size(int(row[f'{m}_a']))} -> {format_size(int(row[f'{m}_b']))} "
            f"({row[f'{m}_change']:+.1%}){'*' if row[f'{m}_changed'] else ''}"
            for m in ("footprint", "peak")
        )
        lines.append(f"  {describe_point(row, params)}: {speed}; {memory}")
    return "\n".join(lines)
