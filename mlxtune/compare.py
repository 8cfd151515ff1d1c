"""Two sweep results side by side: what changed, whether the change is real, and CI gates on it.

The same evidence standard as the recommendation (:mod:`mlxtune.decision`): a difference counts
only when the data shows it. Each metric's ratio (new over baseline) gets the distribution-free
``confidence`` interval of :func:`mlxtune.stats.ratio_ci` (Hodges-Lehmann, the interval that inverts
the Mann-Whitney test; with few runs it spans every pairwise ratio). A metric is *significant* when
its interval excludes 1, *changed* when the whole interval lies beyond ``factor`` (asv calls a change
only when it beats a factor and the noise), and a gate fails only where the whole interval lies past
its threshold: noise that merely crosses it is reported as "within noise", never as a failure.

Fleet results (one sweep per host, :mod:`mlxtune.fleet`) compare host by host: every host both
measured, with a ``host`` column first.

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

from mlxtune.files import write_atomic, write_together
from mlxtune.fleet_result import HOST_COLUMN, FleetResult, load
from mlxtune.plots import check_format, data_uri, figure_bytes
from mlxtune.present import Row, Table, environment_rows, text_table
from mlxtune.report import figure_files, render_markdown_template, render_template
from mlxtune.result import SweepResult
from mlxtune.stats import ratio_ci, run_footprints
from mlxtune.units import format_size
from mlxtune.view import number, param_text, point_text

__all__ = [
    "METRICS",
    "Gate",
    "GateResult",
    "as_result",
    "check_gates",
    "compare",
    "comparison_table",
    "comparison_text",
    "parse_gate",
    "render_comparison_html",
    "verdict",
    "write_comparison_html",
    "write_comparison_markdown",
]

#: What a gate can watch, and the comparison column holding its relative change.
METRICS = {"throughput": "throughput_change", "footprint": "footprint_change", "peak": "peak_change"}
_GATE_FORMS = (
    "METRIC<PERCENT% or METRIC>PERCENT%, with METRIC one of throughput, footprint, peak and a signed "
    "percent, e.g. throughput<-5% or peak>+10%"
)
_GATE_RE = re.compile(
    r"^\s*(?P<metric>[a-z]+)\s*(?P<op>[<>])\s*(?P<percent>(?P<sign>[+-]?)(?:\d+(?:\.\d*)?|\.\d+))\s*%\s*$"
)


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
    beyond ``factor`` either way). ``attrs`` holds the two ``labels``, the throughput ``unit`` and
    ``warnings`` (:func:`differences`). Results that count different units are refused.
    """
    if not factor >= 1:
        raise ValueError(f"factor must be a number of at least 1 (e.g. 1.05 for 5%), not {factor!r}")
    a, b = as_result(a), as_result(b)
    frames, warnings = [], []
    for host, result_a, result_b in pairs(a, b):
        frame = _compare_sweeps(result_a, result_b, factor, confidence)
        if host:
            frame.insert(0, HOST_COLUMN, host)
        frames.append(frame)
        warnings += [f"{host}: {text}" if host else text for text in differences(result_a, result_b)]
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    frame.attrs["labels"] = [a.label, b.label]
    frame.attrs["unit"] = pairs(a, b)[0][1].unit
    frame.attrs["warnings"] = warnings
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


def differences(a: SweepResult, b: SweepResult) -> list[str]:
    """What makes two results less comparable than they look: another workload or another machine."""
    found = []
    if a.workload != b.workload:
        workloads = " / ".join(r.workload or "not described" for r in (a, b))
        found.append(f"the workloads differ: {workloads}")
    if a.design != b.design:
        found.append(f"the designs differ: {a.design} / {b.design} (blocks inside runs against whole runs)")
    for key, name in (("backend", "backend"), ("device_name", "device"), ("mlx", "MLX version")):
        left, right = a.environment.get(key), b.environment.get(key)
        if left != right:
            found.append(f"the {name} differs: {left} / {right}")
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

    A gate fails where the whole interval of the change lies past its threshold (see the module
    docstring); where only the estimate crosses it, the point is listed as within noise. Failures are
    regressions: every gate fails at a point where ``b`` failed a larger share of its runs than ``a``,
    and for a host the baseline fleet measured and ``b`` did not.
    """
    parsed = [parse_gate(g) for g in gates]
    if parsed and frame.empty:
        raise ValueError("the two results share no grid point, so no gate can be checked")
    params = _params(frame)
    results = []
    for gate in parsed:
        failures, noisy = [], []
        failures += [f"{host}: not measured in the new result ({why})"
                     for host, why in frame.attrs.get("lost_hosts", {}).items()]
        for _, row in frame.iterrows():
            where = point_text(row, params)
            change = row[METRICS[gate.metric]]
            if row["failed_b"] / max(row["runs_b"], 1) > row["failed_a"] / max(row["runs_a"], 1):
                failed = (f"{row['failed_b']} of {row['runs_b']} runs failed in the new result "
                          f"({row['failed_a']} of {row['runs_a']} in the baseline)")
                failures.append(f"{where}: {failed}")
            elif gate.crossed(change):
                text = f"{where}: {change:+.1%} ({_values(row, gate.metric)})"
                (failures if gate.shown(row) else noisy).append(text)
        results.append(GateResult(gate, failures, noisy))
    return results


def _params(frame: pd.DataFrame) -> list[str]:
    return list(frame.columns[: list(frame.columns).index("runs_a")])


def _values(row: pd.Series, metric: str) -> str:
    if metric == "throughput":
        return f"{row['throughput_a']:.4g} -> {row['throughput_b']:.4g}/s"
    return f"{format_size(int(row[f'{metric}_a']))} -> {format_size(int(row[f'{metric}_b']))}"


def comparison_text(frame: pd.DataFrame) -> str:
    """The comparison for the terminal: a line naming both sides, what makes them differ, and the table
    of :func:`comparison_table` with its units ("*": a real change, beyond the factor and the noise)."""
    labels = frame.attrs.get("labels", ["a", "b"])
    lines = [f"A: {labels[0]} (baseline) -> B: {labels[1]}"]
    lines += [f"warning: {text}" for text in frame.attrs.get("warnings", [])]
    table = comparison_table(frame)
    for row in table.rows:
        marks = [" *" if css in ("better", "worse") else "" for css in row.cell_css]
        row.cells = [cell + mark for cell, mark in zip(row.cells, marks, strict=True)]
    return "\n".join([*lines, text_table(table)])


# -- reports ------------------------------------------------------------------------------------


def comparison_table(frame: pd.DataFrame) -> Table:
    """The comparison as display text, each changed cell marked "better" or "worse"."""
    params = _params(frame)
    unit = frame.attrs.get("unit", "runs")
    headers = [p.replace("_", " ") for p in params] + [
        f"A ({unit}/s)", f"B ({unit}/s)", "change (95% CI)", "footprint A", "footprint B", "change",
        "peak A", "peak B", "change",
    ]
    rows = []
    for _, row in frame.iterrows():
        cells = [param_text(p, row[p]) for p in params]
        css = [""] * len(params)
        ci = f"{_percent(row['throughput_ratio_low'] - 1)} .. {_percent(row['throughput_ratio_high'] - 1)}"
        cells += [number(row["throughput_a"]), number(row["throughput_b"]),
                  f"{_percent(row['throughput_change'])} ({ci})"]
        css += ["", "", _verdict_css(row, "throughput", higher_is_better=True)]
        for metric in ("footprint", "peak"):
            cells += [format_size(int(row[f"{metric}_a"])), format_size(int(row[f"{metric}_b"])),
                      f"{_percent(row[f'{metric}_change'])} ({_signed_size(int(row[f'{metric}_diff']))})"]
            css += ["", "", _verdict_css(row, metric, higher_is_better=False)]
        rows.append(Row(cells, cell_css=css))
    return Table(headers, rows, text_columns=len(params))


def _percent(value: float) -> str:
    return f"{value:+.1%}" if math.isfinite(value) else "–"


def _signed_size(value: int) -> str:
    return f"+{format_size(value)}" if value > 0 else format_size(value)


def _verdict_css(row: pd.Series, metric: str, higher_is_better: bool) -> str:
    if not row[f"{metric}_changed"]:
        return ""
    return "better" if (row[f"{metric}_change"] > 0) == higher_is_better else "worse"


def verdict(frame: pd.DataFrame) -> str:
    """One sentence: which metrics really changed, at how many points, and by how much."""
    if frame.empty:
        return "The two results share no grid point: nothing to compare."
    parts = []
    for metric in ("throughput", "footprint", "peak"):
        changed = frame[frame[f"{metric}_changed"]]
        if len(changed):
            low, high = changed[f"{metric}_change"].min(), changed[f"{metric}_change"].max()
            span = _percent(low) if low == high else f"{_percent(low)} to {_percent(high)}"
            parts.append(f"{metric} changed at {len(changed)} of {len(frame)} points ({span})")
    if not parts:
        return f"No real change at any of the {len(frame)} shared grid points: all within the noise."
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def _environment_table(a: Comparable, b: Comparable) -> Table:
    rows = []
    for host, result_a, result_b in pairs(a, b):
        left, right = dict(environment_rows(result_a)), dict(environment_rows(result_b))
        for key in [*left, *(k for k in right if k not in left)]:
            pair = [left.get(key, "–"), right.get(key, "–")]
            name = f"{host}: {key}" if host else key
            rows.append(Row([name, *pair], css="differs" if pair[0] != pair[1] else ""))
    return Table(["", "A", "B"], rows, text_columns=3)


def _only_text(a: Comparable, b: Comparable, frame: pd.DataFrame) -> str:
    shared = pairs(a, b)
    counts = [sum(len(pair[side].summary_frame()) for pair in shared) - len(frame) for side in (1, 2)]
    parts = [f"{n} grid point{'s' if n != 1 else ''} only in {side}"
             for n, side in zip(counts, "AB", strict=True) if n]
    if isinstance(a, FleetResult) and isinstance(b, FleetResult):
        hosts = [h for h in (*a.results, *b.results) if h not in a.results or h not in b.results]
        parts += [f"host {h} only in {'A' if h in a.results else 'B'}" for h in dict.fromkeys(hosts)]
    return ("Not compared: " + " and ".join(parts) + ".") if parts else ""


def _plotted(a: Comparable, b: Comparable) -> list[SweepResult]:
    """The curves of a comparison figure: A and B, or A and B of each shared host, named so."""
    from mlxtune.plots import plot_labels

    labels = plot_labels([a, b])  # type: ignore[list-item]
    return [dataclasses.replace(result, label=f"{host} · {label}" if host else label)
            for host, *results in pairs(a, b) for label, result in zip(labels, results, strict=True)]


def _gate_table(results: Sequence[GateResult]) -> Table:
    rows = []
    for result in results:
        details = "; ".join([*result.failures, *(f"within noise at {t}" for t in result.within_noise)]) or "–"
        rows.append(Row([str(result.gate), "PASS" if result.passed else "FAIL", details],
                        cell_css=["", "better" if result.passed else "worse", ""]))
    return Table(["gate", "result", "details"], rows, text_columns=3)


def _context(a: Comparable, b: Comparable, gates: Sequence[str | Gate],
             factor: float) -> tuple[pd.DataFrame, dict[str, Any]]:
    from mlxtune.plots import plot_labels

    frame = compare(a, b, factor=factor)
    labels = plot_labels([a, b])  # type: ignore[list-item]
    return frame, {
        "title": f"mlxtune comparison: {labels[0]} vs {labels[1]}",
        "labels": labels,
        "shared": len(frame),
        "only": _only_text(a, b, frame),
        "verdict": verdict(frame),
        "factor_text": f"{factor - 1:.0%}",
        "gates": _gate_table(check_gates(frame, gates)) if gates else None,
        "table": comparison_table(frame),
        "environment": _environment_table(a, b),
        "version": pairs(a, b)[0][1].environment.get("mlxtune", ""),
    }


def render_comparison_html(
    a: Comparable | str | os.PathLike[str],
    b: Comparable | str | os.PathLike[str],
    *,
    gates: Sequence[str | Gate] = (),
    factor: float = 1.05,
    image_format: str = "svg",
    title: str | None = None,
) -> str:
    """Both results side by side in one self-contained HTML page, real changes highlighted."""
    from mlxtune.plots import comparison

    check_format(image_format)
    a, b = as_result(a), as_result(b)
    frame, context = _context(a, b, gates, factor)
    figures = [
        {"kind": kind, "uri": data_uri(comparison(_plotted(a, b), kind=kind), image_format),
         "caption": caption, "alt": f"{kind} comparison"}
        for kind, caption in _FIGURES.items()
    ] if not frame.empty else []
    return render_template("comparison.html.j2", **{**context, "title": title or context["title"]},
                           figures=figures)


_FIGURES = {
    "tradeoff": "Speed against memory for both results (error bars: quartiles of the runs).",
    "throughput": "Median throughput against cache limit for both results.",
}


def write_comparison_html(a: Comparable | str | os.PathLike[str], b: Comparable | str | os.PathLike[str],
                          path: str | os.PathLike[str], **options: Any) -> str:
    """Write :func:`render_comparison_html` (same options) atomically; returns the path."""
    return write_atomic(path, render_comparison_html(a, b, **options))


def write_comparison_markdown(
    a: Comparable | str | os.PathLike[str],
    b: Comparable | str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    gates: Sequence[str | Gate] = (),
    factor: float = 1.05,
) -> str:
    """The comparison as Markdown (changed cells in bold) with its figures as PNG files beside it."""
    from mlxtune.plots import comparison

    a, b = as_result(a), as_result(b)
    frame, context = _context(a, b, gates, factor)
    kinds = [] if frame.empty else list(_FIGURES)
    images = {kind: figure_bytes(comparison(_plotted(a, b), kind=kind), "png") for kind in kinds}
    files = figure_files(path, images)
    text = render_markdown_template(
        "comparison.md.j2", **context, points=len(frame),
        figure_names={kind: files[kind].name for kind in images},
        changed=[[bool(css) for css in row.cell_css] for row in context["table"].rows],
        differs=[[row.css == "differs"] * 3 for row in context["environment"].rows])
    return write_together({**{files[kind]: data for kind, data in images.items()}, path: text})[-1]
