"""Two sweep results side by side, for people: the terminal table, the verdict, the HTML and Markdown
reports of a comparison.

The numbers (the comparison frame, the intervals, the gates) are :mod:`mlxtune.comparison`'s; the
words of a gate's findings are :mod:`mlxtune.view`'s. ``mlxtune.compare`` (the package attribute) is
the function :func:`compare`, the same as :func:`mlxtune.comparison.compare`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from typing import Any

import pandas as pd

from mlxtune.comparison import Comparable, as_result, check_gates, compare, comparison_params, pairs
from mlxtune.files import write_atomic, write_together
from mlxtune.fleet_result import FleetResult
from mlxtune.gates import Gate, GateResult
from mlxtune.plots import check_format, data_uri, figure_bytes
from mlxtune.present import Row, Table, environment_rows, text_table
from mlxtune.report import figure_files, render_markdown_template, render_template
from mlxtune.result import SweepResult
from mlxtune.units import format_size
from mlxtune.view import count_text, difference_text, gate_finding_text, number, param_text

__all__ = [
    "compare",
    "comparison_table",
    "comparison_text",
    "render_comparison_html",
    "verdict",
    "write_comparison_html",
    "write_comparison_markdown",
]


def comparison_text(frame: pd.DataFrame) -> str:
    """The comparison for the terminal: a line naming both sides, what makes them differ, and the table
    of :func:`comparison_table` with its units ("*": a real change, beyond the factor and the noise)."""
    labels = frame.attrs.get("labels", ["a", "b"])
    lines = [f"A: {labels[0]} (baseline) -> B: {labels[1]}"]
    lines += [f"warning: {difference_text(found)}" for found in frame.attrs.get("differences", [])]
    table = comparison_table(frame)
    for row in table.rows:
        marks = [" *" if css in ("better", "worse") else "" for css in row.cell_css]
        row.cells = [cell + mark for cell, mark in zip(row.cells, marks, strict=True)]
    return "\n".join([*lines, text_table(table)])


# -- reports ------------------------------------------------------------------------------------


def comparison_table(frame: pd.DataFrame) -> Table:
    """The comparison as display text, each changed cell marked "better" or "worse"."""
    params = comparison_params(frame)
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
    parts = [f"{count_text(n, 'grid point')} only in {side}"
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
        metric = result.gate.metric
        details = "; ".join([*(gate_finding_text(found, metric) for found in result.failures),
                             *(f"within noise at {gate_finding_text(found, metric)}"
                               for found in result.within_noise)]) or "–"
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
