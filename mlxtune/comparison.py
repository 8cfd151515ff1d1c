"""Two sweep results side by side, in numbers: what changed, whether the change is real, and CI gates.

The same evidence standard as the recommendation (:mod:`mlxtune.decision`): a difference counts
only when the data shows it. Each metric's ratio (new over baseline) gets the distribution-free
``confidence`` interval of :func:`mlxtune.stats.ratio_ci` (Hodges-Lehmann, the interval that inverts
the Mann-Whitney test; with few runs it spans every pairwise ratio). A metric is *significant* when
its interval excludes 1, *changed* when the whole interval lies beyond ``factor`` (asv calls a change
only when it beats a factor and the noise), and a gate fails only where the whole interval lies past
its threshold: noise that merely crosses it is reported as "within noise", never as a failure.

Fleet results (one sweep per host, :mod:`mlxtune.fleet`) compare host by host: every host both
measured, with a ``host`` column first.

Numbers only: :mod:`mlxtune.view` puts a gate's findings and the results' differences into words,
:mod:`mlxtune.compare` renders the comparison for the terminal and as reports.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlxtune.fleet_result import HOST_COLUMN, FleetResult, load
from mlxtune.gates import METRICS, Difference, Gate, GateFinding, GateResult, parse_gate
from mlxtune.result import SweepResult
from mlxtune.stats import ratio_ci, run_footprints

__all__ = ["Comparable", "as_result", "check_gates", "compare", "comparison_params", "differences", "pairs"]



Comparable = SweepResult | FleetResult


def as_result(source: Comparable | str | os.PathLike[str]) -> Comparable:
    """A result, or the one saved at a path (see :func:`mlxtune.load`)."""
    if isinstance(source, (SweepResult, FleetResult)):
        return source
    if isinstance(source, (str, os.PathLike)):
        return load(source)
    raise TypeError(f"expected a SweepResult or the path of a saved one, not {type(source).__name__}")


def pairs(a: Comparable, b: Comparable) -> list[tuple[str, SweepResult, SweepResult]]:
    """What to compare: ("", a, b) for two sweeps, (host, a's, b's) for each host two fleets share."""
    if isinstance(a, FleetResult) != isinstance(b, FleetResult):
        raise ValueError("compare a fleet result (one sweep per host) with another fleet result, "
                         "not with a single sweep")
    if not isinstance(a, FleetResult) or not isinstance(b, FleetResult):
        return [("", a, b)]  # type: ignore[list-item]
    shared = [host for host in a.results if host in b.results]
    if not shared:
        raise ValueError(f"the fleet results share no measured host (A: {', '.join(a.results) or 'none'}; "
                         f"B: {', '.join(b.results) or 'none'}): compare fleets measured on the same hosts")
    return [(host, a.results[host], b.results[host]) for host in shared]


def compare(
    a: Comparable | str | os.PathLike[str],
    b: Comparable | str | os.PathLike[str],
    *,
    factor: float = 1.05,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """One row per grid point the two results share: ``b`` against the baseline ``a``; for two fleet
    results, per host they share, with a ``host`` column first.

    Columns: the parameters; ``runs_a``/``runs_b``; ``throughput_a``/``_b`` (medians),
    ``throughput_ratio`` (b / a), ``throughput_ratio_low``/``_high`` (its ``confidence`` interval),
    ``throughput_change`` (ratio - 1); ``footprint_*`` and ``peak_*`` (largest over runs, bytes) with
    ``_diff`` (b - a, bytes), ``_change`` (relative) and ``_ratio_low``/``_high`` (the interval of the
    per-run ratio); for each metric ``_significant`` (interval excludes 1) and ``_changed`` (interval
    beyond ``factor`` either way). ``attrs`` holds the two ``labels``, the throughput ``unit``, the
    ``differences`` (:func:`differences`) and the ``lost_hosts`` (:func:`lost_hosts`). Results that
    count different units are refused.
    """
    if not factor >= 1:
        raise ValueError(f"factor must be a number of at least 1 (e.g. 1.05 for 5%), not {factor!r}")
    a, b = as_result(a), as_result(b)
    frames, found = [], []
    for host, result_a, result_b in pairs(a, b):
        frame = _compare_sweeps(result_a, result_b, factor, confidence)
        if host:
            frame.insert(0, HOST_COLUMN, host)
        frames.append(frame)
        found += differences(result_a, result_b, host)
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    frame.attrs["labels"] = [a.label, b.label]
    frame.attrs["unit"] = pairs(a, b)[0][1].unit
    frame.attrs["differences"] = found
    frame.attrs["lost_hosts"] = lost_hosts(a, b)
    return frame


def lost_hosts(a: Comparable, b: Comparable) -> dict[str, str]:
    """Hosts the baseline fleet measured and the new one did not, with why (its failure): a regression
    on every gate, not a host to skip."""
    if not isinstance(a, FleetResult) or not isinstance(b, FleetResult):
        return {}
    return {host: b.failures.get(host, "not in the new result")
            for host in a.results if host not in b.results or host in b.failures}


def _compare_sweeps(a: SweepResult, b: SweepResult, factor: float, confidence: float) -> pd.DataFrame:
    if set(a.params) != set(b.params):
        raise ValueError(f"the results have different grid axes ({a.params} and {b.params}): "
                         "compare results swept over the same parameters")
    if a.unit != b.unit and _any_succeeded(a) and _any_succeeded(b):
        raise ValueError(f"the results count different things ({a.unit}/s and {b.unit}/s), so their speeds "
                         "cannot be compared: compare sweeps of the same workload")
    params = list(a.params)
    summary_a, summary_b = a.summary_frame(), b.summary_frame()
    shared = summary_a.merge(summary_b, on=params, suffixes=("_a", "_b"), how="inner")
    rows = []
    for _, point in shared.iterrows():
        speed_a, speed_b = _runs_at(a.speed_rows, params, point), _runs_at(b.speed_rows, params, point)
        memory_a, memory_b = _memory_rows(a, params, point, speed_a), _memory_rows(b, params, point, speed_b)
        measured = _compare_point(point, speed_a, speed_b, memory_a, memory_b, factor, confidence)
        rows.append({p: point[p] for p in params} | measured)
    return pd.DataFrame(rows, columns=[*params, *_COLUMNS])


def differences(a: SweepResult, b: SweepResult, host: str = "") -> list[Difference]:
    """What makes two results less comparable than they look: another workload or another machine."""
    found = []
    if a.workload != b.workload:
        found.append(Difference("workload", a.workload or "", b.workload or "", host))
    if a.design != b.design:
        found.append(Difference("design", a.design, b.design, host))
    for key in ("backend", "device_name", "mlx"):
        left, right = a.environment.get(key), b.environment.get(key)
        if left != right:
            found.append(Difference(key, str(left), str(right), host))
    return found


_COLUMNS = [
    "runs_a", "runs_b", "failed_a", "failed_b", "throughput_a", "throughput_b", "throughput_ratio",
    "throughput_ratio_low", "throughput_ratio_high", "throughput_change", "throughput_significant",
    "throughput_changed",
    *(f"{metric}_{part}" for metric in ("footprint", "peak")
      for part in ("a", "b", "diff", "change", "ratio_low", "ratio_high", "significant", "changed")),
]


def _runs_at(runs: pd.DataFrame, params: Sequence[str], point: pd.Series) -> pd.DataFrame:
    mask = np.ones(len(runs), dtype=bool)
    for name in params:
        mask &= (runs[name] == point[name]).to_numpy()
    return runs[mask]


def _any_succeeded(result: SweepResult) -> bool:
    rows = result.speed_rows
    return bool((rows["error"] == "").any()) if len(rows) else False


def _memory_rows(result: SweepResult, params: Sequence[str], point: pd.Series,
                 speed: pd.DataFrame) -> pd.DataFrame:
    """The rows a point's memory comes from: its whole runs, else (a paired sweep's other limits) its
    blocks, as in :func:`mlxtune.stats.summarize_paired`."""
    runs = _runs_at(result.runs, params, point) if result.design == "paired" else speed
    return runs if len(runs) else speed


def _compare_point(point: pd.Series, runs_a: pd.DataFrame, runs_b: pd.DataFrame, memory_a: pd.DataFrame,
                   memory_b: pd.DataFrame, factor: float, confidence: float) -> dict[str, Any]:
    """``runs_*``: the rows speed is measured on (runs, or a paired sweep's blocks); ``memory_*``: those
    the memory is."""
    ok_a, ok_b = runs_a[runs_a["error"] == ""], runs_b[runs_b["error"] == ""]
    speed_a, speed_b = point["throughput_median_a"], point["throughput_median_b"]
    ratio = speed_b / speed_a if speed_a > 0 else math.nan
    low, high = _interval(ok_b["throughput"], ok_a["throughput"], confidence)
    row: dict[str, Any] = {
        "runs_a": len(runs_a), "runs_b": len(runs_b),
        "failed_a": int((runs_a["error"] != "").sum()), "failed_b": int((runs_b["error"] != "").sum()),
        "throughput_a": speed_a, "throughput_b": speed_b, "throughput_ratio": ratio,
        "throughput_ratio_low": low, "throughput_ratio_high": high, "throughput_change": ratio - 1,
        **_evidence("throughput", low, high, factor),
    }
    per_run = {
        "footprint": (run_footprints(memory_a), run_footprints(memory_b), point["footprint_a"],
                      point["footprint_b"]),
        "peak": (memory_a["peak_memory"], memory_b["peak_memory"], point["peak_memory_max_a"],
                 point["peak_memory_max_b"]),
    }
    for metric, (values_a, values_b, largest_a, largest_b) in per_run.items():
        memory_ratio = largest_b / largest_a if largest_a > 0 else math.nan
        low, high = _interval(values_b, values_a, confidence)
        row |= {
            f"{metric}_a": int(largest_a), f"{metric}_b": int(largest_b),
            f"{metric}_diff": int(largest_b - largest_a), f"{metric}_change": memory_ratio - 1,
            f"{metric}_ratio_low": low, f"{metric}_ratio_high": high, **_evidence(metric, low, high, factor),
        }
    return row


def _interval(new: pd.Series, base: pd.Series, confidence: float) -> tuple[float, float]:
    """The interval of new over base (:func:`ratio_ci`); unknown (NaN) with fewer than two runs a side,
    where a single pairwise ratio would pass for certainty."""
    if min(new.notna().sum(), base.notna().sum()) < 2:
        return math.nan, math.nan
    _, low, high = ratio_ci(new, base, confidence)
    return low, high


def _evidence(metric: str, low: float, high: float, factor: float) -> dict[str, bool]:
    """Whether an interval of a ratio shows a difference at all, and one beyond ``factor``."""
    known = math.isfinite(low) and math.isfinite(high)
    return {
        f"{metric}_significant": bool(known and (low > 1 or high < 1)),
        f"{metric}_changed": bool(known and (low > factor or high * factor < 1)),
    }


# -- gates --------------------------------------------------------------------------------------


def check_gates(frame: pd.DataFrame, gates: Sequence[str | Gate]) -> list[GateResult]:
    """Check each gate at every shared grid point of a :func:`compare` frame.

    A gate fails where the whole interval of the change lies past its threshold (see the module
    docstring); where only the estimate crosses it, the point is listed as within noise. Failures are
    regressions: every gate fails at a point where ``b`` failed a larger share of its runs than ``a``,
    and for a host the baseline fleet measured and ``b`` did not.
    """
    parsed = [parse_gate(g) for g in gates]
    if parsed and frame.empty:
        raise ValueError("the two results share no grid point, so no gate can be checked")
    params = comparison_params(frame)
    lost = [GateFinding({HOST_COLUMN: host}, lost=why)
            for host, why in frame.attrs.get("lost_hosts", {}).items()]
    results = []
    for gate in parsed:
        failures, noisy = list(lost), []
        for _, row in frame.iterrows():
            point = {name: row[name] for name in params}
            if row["failed_b"] / max(row["runs_b"], 1) > row["failed_a"] / max(row["runs_a"], 1):
                counts = (int(row["failed_b"]), int(row["runs_b"]), int(row["failed_a"]), int(row["runs_a"]))
                failures.append(GateFinding(point, failed=counts))
            elif gate.crossed(change := row[METRICS[gate.metric]]):
                values = float(row[f"{gate.metric}_a"]), float(row[f"{gate.metric}_b"])  # speed or bytes
                found = GateFinding(point, change, *values)
                (failures if gate.shown(row) else noisy).append(found)
        results.append(GateResult(gate, failures, noisy))
    return results


def comparison_params(frame: pd.DataFrame) -> list[str]:
    """The grid columns of a :func:`compare` frame (the host first for fleets)."""
    return list(frame.columns[: list(frame.columns).index("runs_a")])
