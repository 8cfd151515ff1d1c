"""Presentation: what each surface shows of a result, built once and rendered the same everywhere.

Tables (:class:`Table` of :class:`Row` cells) are display text, so the HTML report, the Markdown
report, the terminal and the notebook show the same cells; the words inside them come from
:mod:`mlxtune.view`, which takes values. This module is the one that reads results
(:class:`~mlxtune.result.SweepResult`, :class:`~mlxtune.fleet_result.FleetResult`) to build what is
shown; renderers (:mod:`mlxtune.report`, :mod:`mlxtune.plots`) and front ends place it.
"""

from __future__ import annotations

import dataclasses
import html
import json
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

from mlxtune.decision import TOLERANCE
from mlxtune.units import format_size
from mlxtune.view import (
    LIMIT_AXES,
    PROCESS_MEMORY,
    cell_text,
    count_text,
    limit_text,
    number,
    param_text,
    point_text,
    ratio_text,
    seconds_text,
    time_text,
)

if TYPE_CHECKING:
    from mlxtune.advice import FleetRecommendation, Recommendation
    from mlxtune.fleet_result import FleetResult
    from mlxtune.memory import Snapshot
    from mlxtune.result import SweepResult

__all__ = [
    "CellDisplay",
    "Row",
    "Summary",
    "Table",
    "cell_display",
    "code_snippets",
    "design_text",
    "environment_rows",
    "errors_in_full",
    "fleet_headline",
    "fleet_table",
    "fleet_text_report",
    "formatted",
    "history_view",
    "limit_details",
    "pairs_html",
    "recommended_mark",
    "recommended_rows",
    "reproduce_text",
    "runs_table",
    "snapshot_html",
    "snapshot_text",
    "status_text",
    "summary",
    "summary_table",
    "text_report",
    "text_table",
    "throughput_unit",
]


@dataclasses.dataclass
class Row:
    """One table row as display text, so HTML, Markdown and the terminal show the same cells."""

    cells: list[str]
    css: str = ""
    cell_css: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Table:
    """Headers and rows; the first ``text_columns`` columns are labels (left-aligned), the rest numbers."""

    headers: list[str]
    rows: list[Row]
    text_columns: int = 0


def recommended_rows(summary: pd.DataFrame, rec: Recommendation) -> pd.Series:
    """Which summary rows are the recommended point: its cache limit and its value on every other axis."""
    match = summary["cache_limit"] == rec.cache_limit
    for name, value in rec.params.items():
        match &= summary[name] == value if name in summary else False
    return match


def summary_table(result: SweepResult, rec: Recommendation | None = None) -> Table:
    """The summary as display text, the recommended row marked: each point's median speed, its speed
    relative to the best with the interval the rule uses (:mod:`mlxtune.decision`) and its verdict,
    the spread of its runs, and memory: the sampled peak footprint first."""
    summary = result.summary_frame()
    unit = throughput_unit(result, summary)
    decision = result.decision(rec.budget if rec else None, rec.tolerance if rec else TOLERANCE).points
    marked = recommended_rows(summary, rec) if rec is not None else pd.Series(False, index=summary.index)
    params = list(result.params)
    paired = result.design == "paired"
    headers = [p.replace("_", " ") for p in params] + [
        f"median {unit}/s", "x best (95% bounds)", "verdict", "quartiles", "footprint", "peak active",
        "cache held", "process peak", "blocks" if paired else "runs",
    ]
    rows = []
    for (index, point), recommended in zip(summary.iterrows(), marked, strict=True):
        cells = [param_text(p, point[p]) for p in params]
        if recommended:
            cells[0] += f" {recommended_mark(rec)}"
        failed = int(point["failed"])
        verdict = decision.loc[index]
        # a paired sweep's memory is a whole run's where it ran one; else its blocks', marked so
        where = " (blocks)" if paired and point.get("memory_from") == "blocks" else ""
        cells += [
            number(point["throughput_median"]),
            ratio_text(verdict["ratio"], verdict["ratio_low"], verdict["ratio_high"]),
            str(verdict["verdict"]),
            f"{number(point['throughput_q1'])} – {number(point['throughput_q3'])}",
            format_size(int(point["footprint"])) + where,
            format_size(int(point["peak_memory_max"])),
            format_size(int(point["cache_after_max"])),
            format_size(int(point["process_peak_max"])) + where,
            f"{int(point['runs'])}" + (f" ({failed} failed)" if failed else ""),
        ]
        rows.append(Row(cells, css="recommended" if recommended else ""))
    return Table(headers, rows, text_columns=len(params))


def runs_table(result: SweepResult, blocks: bool = False) -> Table:
    """Every run (``blocks``: every block of a paired sweep) with every column, exact values: bytes in
    full, limits as words, times as dates."""
    # the whole error is one click away (:func:`errors_in_full`); a traceback does not fit a table cell
    runs = (result.blocks if blocks else result.runs).drop(columns="error_detail", errors="ignore")
    rows = [Row([cell_text(name, v) for name, v in zip(runs.columns, row, strict=True)],
                css="failed" if row.error else "")
            for row in runs.itertuples(index=False)]
    return Table([str(c) for c in runs.columns], rows, text_columns=0)


def errors_in_full(result: SweepResult) -> list[tuple[str, str]]:
    """Each failed run, then each failed block: a heading (which, where, the one-line error) and the
    whole error as Python printed it."""
    found = []
    for what, frame in (("run", result.runs), ("block", result.blocks)):
        for position, row in enumerate(frame.to_dict("records")):
            if row["error"]:
                heading = f"{what} {position} ({point_text(row, result.params)}): {row['error']}"
                found.append((heading, str(row.get("error_detail") or row["error"])))
    return found


#: Summary and runs columns that hold bytes, shown as sizes in :func:`formatted` frames.
_BYTE_COLUMNS = frozenset({
    "peak_memory", "active_before", "active_after", "cache_before", "cache_after", "process_rss",
    "footprint_peak", "process_peak", "peak_memory_max", "cache_after_max", "footprint", "process_rss_max",
    "process_peak_max", "footprint_above_start",
})


def formatted(frame: pd.DataFrame) -> Any:
    """A runs, summary or history frame for people (a pandas Styler): limits as words ("0",
    "unlimited"), bytes as sizes, start times as dates, numbers right-aligned to four significant
    figures. The frame itself is not changed: its columns stay numbers for computing."""

    def shown(name: str) -> Any:
        if name in LIMIT_AXES:
            return limit_text
        if name in _BYTE_COLUMNS:
            return format_size
        if name == "started_at":
            return time_text
        return number if pd.api.types.is_float_dtype(frame[name]) else None

    formats = {name: f for name in frame.columns if (f := shown(str(name))) is not None}
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
    return (frame.style.format(formats, na_rep="–").hide(axis="index")
            .set_properties(subset=numeric, **{"text-align": "right"}))


def environment_rows(result: SweepResult) -> list[tuple[str, str]]:
    """Where and how it was measured, in reading order; unknown environment keys follow."""
    env = dict(result.environment)
    names = {"mlxtune": "mlxtune", "mlx": "MLX", "mlx_lm": "mlx-lm", "backend": "backend",
             "device_name": "device", "device_memory": "device memory", "system_memory": "system memory",
             "hostname": "host name", "os": "OS", "python": "Python", "date": "date"}
    rows = []
    for key, name in names.items():
        if key in env:
            value = env.pop(key)
            is_size = key.endswith("memory") and isinstance(value, int)
            rows.append((name, format_size(value) if is_size else str(value)))
    rows += [(str(k), _plain_text(v)) for k, v in env.items()]
    rows.append(("workload", result.workload or "not described"))
    rows.append(("throughput unit", f"{result.unit} per second"))
    rows.append(("runs", f"{len(result.runs)} measured, {result.failed_runs} failed, "
                         f"{result.planned_runs or len(result.runs)} planned"))
    rows += [(f"option {k}", _option_text(k, v)) for k, v in result.options.items()]
    return rows


def _option_text(name: str, value: Any) -> str:
    """An option as it reads: limits as words wherever they appear (a list, a grid axis)."""
    if name == "cache_limits" and isinstance(value, list):
        return ", ".join(limit_text(v) for v in value)
    if name == "grid" and isinstance(value, dict):
        axes = [f"{axis}: " + ", ".join(limit_text(v) if axis in LIMIT_AXES else str(v) for v in values)
                for axis, values in value.items()]
        return "; ".join(axes) or "none"
    if name == "budget" and isinstance(value, int):
        return format_size(value)
    return _plain_text(value)


def reproduce_text(result: SweepResult) -> str:
    """How to run the sweep again: the command line it came from, or the ``sweep()`` call its
    options describe, with the commit when there was one."""
    env = result.environment
    if env.get("command"):
        text = env["command"]
    else:
        options = dict(result.options)
        limits = [limit_text(v) for v in options.pop("cache_limits", [])]
        keep = ("repeats", "warmup", "seed", "timeout", "max_runs", "max_seconds", "tolerance", "grid")
        args = [f"cache_limits={limits!r}", *(f"{k}={options[k]!r}" for k in keep
                                              if options.get(k) not in (None, {}, []) and k in options)]
        text = f"mlxtune.sweep(workload, {', '.join(args)})"
    commit = env.get("commit")
    return f"{text}\n# at commit {commit}" if commit else text


def _plain_text(value: Any) -> str:
    """A saved option or environment value as it reads: text as it is, nothing as "none", else JSON."""
    if value is None:
        return "none"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def status_text(result: SweepResult) -> str:
    """Whether the sweep finished, in a few words: "complete: 15 runs" or "incomplete: 9 of 15 ...";
    a paired sweep counts its blocks and whole runs together ("complete: 73 blocks and 2 runs")."""
    failed = f", {result.failed_runs} failed" if result.failed_runs else ""
    runs = len(result.runs)
    whole = count_text(runs, "run")
    measured = f"{len(result.blocks)} blocks and {whole}" if result.design == "paired" else whole
    if result.complete:
        return f"complete: {measured}{failed}"
    reason = f" ({result.stop_reason.rstrip('.')})" if result.stop_reason else ""
    if result.design == "paired":
        return f"incomplete: {measured} of {result.planned_runs} planned{failed}{reason}"
    return f"incomplete: {runs} of {result.planned_runs} planned runs{failed}{reason}"


def design_text(result: SweepResult) -> str:
    """What was compared, and where each number comes from: for a paired sweep its cycles, limits,
    generations and block sizes, what each limit is compared with, and which limits' memory is a
    whole run's."""
    if result.design != "paired":
        rounds = int(result.runs["repeat"].max()) + 1 if len(result.runs) else 0
        return (f"Whole runs: {len(result.runs)} runs in {count_text(rounds, 'round')}, each point once per "
                "round in a shuffled order.")
    blocks = result.blocks
    cycles = int(blocks["repeat"].max()) + 1
    limits = blocks["cache_limit"].nunique()
    generations = int(blocks["generation"].max()) + 1 if "generation" in blocks else 1
    sizes = result.options.get("blocks") or {}
    steps = (f" ({count_text(len(blocks), 'block')} of {count_text(sizes['block'], 'timed step')} after "
             f"{count_text(sizes['settle'], 'settling step')})" if {"block", "settle"} <= set(sizes)
             else f" ({count_text(len(blocks), 'block')})")
    text = (f"Paired within runs: {count_text(cycles, 'cycle')} of {limits} limits in "
            f"{count_text(generations, 'generation')}{steps}; each limit's speed is "
            "compared with the fastest limit's in the cycles both ran.")
    whole = sorted({int(v) for v in result.runs["cache_limit"]}) if len(result.runs) else []
    if whole:
        text += (f" Memory: whole runs at {', '.join(limit_text(v) for v in whole)}; for the other limits, "
                 "what their blocks held at their start and end, beside the run's live state.")
    return text


def recommended_mark(rec: Recommendation) -> str:
    """How a table marks the recommended row: a star once decided, else that it is only safe so far."""
    return "★ recommended" if rec.decided else "(safe; smaller limits undecided)"


def code_snippets(rec: Recommendation) -> tuple[str, str]:
    """Python and Swift to paste, each with the import it needs."""
    return f"import mlx.core as mx\n\n{rec.python_code}", f"import MLX\n\n{rec.swift_code}"


def throughput_unit(result: SweepResult, summary: pd.DataFrame) -> str:
    """What throughput counts ("tokens"): the first unit of a point that measured a speed in
    ``summary`` (a point whose runs all failed names none), else the result's."""
    measured = summary[summary["throughput_median"].notna()] if "throughput_median" in summary else summary
    units = [u for u in measured.get("unit", pd.Series(dtype=str)).dropna() if u]
    return str(units[0]) if units else result.unit


def text_table(table: Table) -> str:
    """A report table (headers, rows of cells) as aligned terminal text: labels left, numbers right."""
    rows = [list(table.headers), *[list(row.cells) for row in table.rows]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < table.text_columns else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([line(rows[0]), "  ".join("-" * w for w in widths), *map(line, rows[1:])])


def fleet_headline(rec: FleetRecommendation) -> str:
    """The fleet's answer in one sentence."""
    if rec.cache_limit is None:
        return "No cache limit can be recommended for every host from these runs yet."
    if not rec.decided:
        return (f"Undecided: cache limit {limit_text(rec.cache_limit)} is safe on every host so far; smaller "
                "limits are not yet shown fast or slow on some host.")
    return f"Set the cache limit to {limit_text(rec.cache_limit)} on every host."


def fleet_table(fleet: FleetResult, rec: FleetRecommendation) -> Table:
    """One row per host: where it measured, its own recommendation, and the fleet's limit on it."""
    headers = ["host", "device", "backend", "memory", "runs", "own recommendation", "at the fleet's limit"]
    rows = []
    verdicts = rec.choice.verdicts
    at_choice = (verdicts["cache_limit"] == rec.cache_limit) if rec.found else None
    for host in fleet.hosts:
        result = fleet.results.get(host)
        if result is None:
            rows.append(Row([host, "–", "–", "–", "0", f"failed: {fleet.failures[host]}", "–"], css="failed"))
            continue
        env, own = result.environment, rec.hosts[host]
        memory = env.get("device_memory")
        shown = "–"
        if at_choice is not None and host in verdicts:
            shown = str(verdicts.loc[at_choice, host].iloc[0])
        failed, lost = result.failed_runs, fleet.failures.get(host)
        answer = limit_text(own.cache_limit) if own.found else "undecided"
        rows.append(Row([
            host, str(env.get("device_name", "unknown")), str(env.get("backend", "unknown")),
            format_size(memory) if isinstance(memory, int) else "–",
            f"{len(result.runs)}" + (f" ({failed} failed)" if failed else ""),
            f"{answer}; then failed: {lost}" if lost else answer,
            shown,
        ], css="failed" if lost else ""))
    return Table(headers, rows, text_columns=4)


class Summary(pd.DataFrame):
    """A sweep's summary in words (the cells of :func:`summary_table`, indexed by grid point), which reads
    the same in a notebook, a terminal and the reports; ``raw`` is the summary in numbers."""

    _metadata: ClassVar[list[str]] = ["raw"]
    raw: pd.DataFrame

    @property
    def _constructor(self) -> type[Summary]:
        return Summary


def summary(result: SweepResult) -> Summary:
    """:meth:`SweepResult.summary`: :func:`summary_table` as a frame, the recommended row marked."""
    table = summary_table(result, result.recommend())
    labels = table.headers[:table.text_columns]
    words = Summary([row.cells for row in table.rows], columns=table.headers).set_index(labels)
    words.raw = result.summary_frame()
    return words


def text_report(result: SweepResult, budget: int | None = None, tolerance: float = TOLERANCE) -> str:
    """The result as terminal text (``mlxtune sweep`` and ``print(result)``): the summary table, how the
    sweep ended, what was compared, and the recommendation with the code that applies it."""
    rec = result.recommend(budget=budget, tolerance=tolerance)
    lines = [text_table(summary_table(result, rec))]
    if not result.complete:
        lines.append(f"\nIncomplete: {result.stop_reason or 'the sweep stopped early'}")
    elif result.stop_reason:  # an adaptive sweep says where it stopped and why
        lines.append(f"\nAdaptive sweep: {result.stop_reason}")
    lines += [f"\n{design_text(result)}", f"\nRecommendation: {rec.reason}"]
    if rec.found:
        if not rec.decided:
            lines.append("  (safe to use now; a smaller limit may do once the open points are decided)")
        lines += _code_lines(rec)
    return "\n".join(lines)


def _code_lines(rec: Recommendation | FleetRecommendation) -> list[str]:
    """The lines that apply a recommended limit, in Python and in Swift, for the terminal."""
    return [f"  Python: {rec.python_code}", f"  Swift:  {rec.swift_code}"]


def fleet_text_report(fleet: FleetResult, budget: int | None = None, tolerance: float = TOLERANCE) -> str:
    """A fleet as terminal text: each host's :func:`text_report`, the hosts table, the fleet's answer."""
    rec = fleet.recommend(budget=budget, tolerance=tolerance)
    lines = [f"\n{host}:\n\n{text_report(result, budget, tolerance)}"
             for host, result in fleet.results.items()]
    lines.append("\n" + text_table(fleet_table(fleet, rec)))
    if not fleet.complete:
        lines.append(f"\nIncomplete: {fleet.stop_reason}")
    lines.append(f"\nFleet recommendation: {rec.reason}")
    if rec.found:
        lines += _code_lines(rec)
    return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class CellDisplay:
    """What ``%%mlxmem`` shows of a cell: a title, MLX memory before and after (name, before, after,
    delta), then named lines; as text for a terminal or as an HTML table, with the same words."""

    title: str
    memory_rows: list[tuple[str, str, str, str]]
    rows: list[tuple[str, str]]

    def text(self) -> str:
        lines = [self.title, f"{'':<19}{'before':>10}{'after':>10}{'delta':>10}"]
        lines += [f"{name:<19}{before:>10}{after:>10}{delta:>10}"
                  for name, before, after, delta in self.memory_rows]
        lines += [f"{name + ':':<19}{value}" for name, value in self.rows]
        return "\n".join(lines)

    def html(self) -> str:
        """The table as HTML; every text in it is escaped (labels and cell lines are the user's)."""
        esc = html.escape
        head = "<tr><th></th><th>before</th><th>after</th><th>delta</th></tr>"
        body = "".join(
            f"<tr><th style='text-align:left'>{esc(name)}</th><td>{esc(before)}</td><td>{esc(after)}</td>"
            f"<td>{esc(delta)}</td></tr>"
            for name, before, after, delta in self.memory_rows
        )
        body += "".join(
            f"<tr><th style='text-align:left'>{esc(name)}</th><td colspan='3'>{esc(value)}</td></tr>"
            for name, value in self.rows
        )
        return (f"<table class='mlxtune-mlxmem'><caption style='text-align:left'>{esc(self.title)}</caption>"
                f"{head}{body}</table>")


def _signed(n: int) -> str:
    return ("+" if n > 0 else "") + format_size(n)


def cell_display(cell: Any) -> CellDisplay:
    """The display of a :class:`mlxtune.magics.CellResult` (runs of one cell): memory before and after,
    the peak increase, the process peak, the wall time (a median with its range when repeated), the
    limits in force, and the error and the lazy-graph note when there are."""
    record, times = cell.records[-1], cell.times
    wall = seconds_text(cell.seconds)
    if len(times) > 1:
        wall += f" (median of {len(times)}; min {seconds_text(min(times))}, max {seconds_text(max(times))})"
    process_peak = max(r.process_peak for r in cell.records)
    rows = [
        ("Peak increase", f"{_signed(cell.peak_increase)} (active + cache, sampled; peak active "
                          f"{format_size(cell.peak)})"),
        ("Process peak", f"{format_size(process_peak)} ({PROCESS_MEMORY}), "
                         f"{format_size(record.process_rss)} resident after"),
        ("Wall time", wall),
        ("Limits", f"cache {limit_text(record.cache_limit)}, memory {limit_text(record.memory_limit)}, "
                   f"wired {limit_text(cell.wired_limit)}"),
    ]
    if cell.error:
        rows.append(("Error", cell.error))
    if cell.note:
        rows.append(("Note", cell.note))
    runs = count_text(len(cell.records), "run")
    if cell.warmup:
        runs += f" after {cell.warmup} warm-up"
    memory_rows = [(name, format_size(before), format_size(after), _signed(after - before))
                   for name, (before, after) in (("Active", cell.active), ("Cache", cell.cache))]
    return CellDisplay(f"%%mlxmem {cell.label or 'cell'} ({runs})", memory_rows, rows)


#: What ``%mlxmem --history`` shows of each run, so the table fits a notebook; the rest stay in ``.data``.
HISTORY_SHOWN = ("run", "label", "cell", "cache_limit", "memory_limit", "wall_seconds", "peak_memory",
                 "footprint_peak", "cache_after", "process_peak", "error")


def history_view(frame: pd.DataFrame) -> Any:
    """The session's runs (:func:`mlxtune.history`) for reading: :func:`formatted`, showing the columns
    a person compares (:data:`HISTORY_SHOWN`) in that order; ``.data`` holds every column."""
    shown = [c for c in HISTORY_SHOWN if c in frame.columns]
    hidden = [c for c in frame.columns if c not in HISTORY_SHOWN]
    return formatted(frame[shown + hidden]).hide(subset=hidden, axis="columns")


def limit_details(result: SweepResult, limit: int) -> list[tuple[str, str]]:
    """What the panel's inspector shows of one cache limit: the cells of its :func:`summary_table` row (of
    the first grid point at that limit), a line each, then the median time of one of its runs."""
    summary = result.summary_frame()
    at = [position for position, value in enumerate(summary["cache_limit"]) if value == limit]
    if not at:
        return [("runs", "none finished")]
    table = summary_table(result)
    cells = list(zip(table.headers, table.rows[at[0]].cells, strict=True))[table.text_columns:]
    return [*cells, ("seconds (median)", number(summary["seconds_median"].iloc[at[0]]))]


def pairs_html(rows: list[tuple[str, str]], css: str = "") -> str:
    """Named values as a two-column HTML table, a row each; every text escaped."""
    body = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                   for k, v in rows)
    return f"<table class='{html.escape(css)}'>{body}</table>" if css else f"<table>{body}</table>"


def snapshot_text(snap: Snapshot) -> str:
    """``%mlxmem`` in a terminal: mlx-swift's three lines (peak, active, cache), the process's resident
    memory, and the limits in force as words."""
    limits = (f"Limits: cache {limit_text(snap.cache_limit)}, memory {limit_text(snap.memory_limit)}, "
              f"wired {limit_text(snap.wired_limit)}")
    return f"{snap.description}\nProcess RSS: {format_size(snap.process_rss)} ({snap.process_rss})\n{limits}"


def snapshot_html(snap: Snapshot) -> str:
    """``%mlxmem`` in a notebook: the same numbers as :func:`snapshot_text`, one row each."""
    rows = [("Peak", format_size(snap.peak)), ("Active", format_size(snap.active)),
            ("Cache", format_size(snap.cache)), ("Process RSS", format_size(snap.process_rss)),
            ("Cache limit", limit_text(snap.cache_limit)), ("Memory limit", limit_text(snap.memory_limit)),
            ("Wired limit", limit_text(snap.wired_limit))]
    return pairs_html(rows)
