"""Words: the one place where numbers and states are put into text for people to read.

Every surface (the command line, the magic, the panel, reports) draws what this module writes, so a
limit, a point or a recommendation reads the same everywhere. Nothing here measures or decides:
the numbers come from :mod:`mlxtune.stats` and :mod:`mlxtune.decision`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import unicodedata
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlxtune.store import iso_time
from mlxtune.units import UNLIMITED, format_size

if TYPE_CHECKING:
    from mlxtune.decision import Decision, FleetChoice, Noise
    from mlxtune.fleet_result import FleetRecommendation, FleetResult
    from mlxtune.result import Recommendation, SweepResult

__all__ = [
    "LIMIT_AXES",
    "PROCESS_MEMORY",
    "Row",
    "Table",
    "cell_text",
    "code_snippets",
    "design_text",
    "environment_rows",
    "fleet_headline",
    "fleet_reason",
    "fleet_table",
    "formatted",
    "headline",
    "limit_text",
    "noise_text",
    "number",
    "param_text",
    "point_text",
    "python_code",
    "ratio_text",
    "reason",
    "recommended_mark",
    "recommended_rows",
    "reproduce_text",
    "runs_table",
    "seconds_text",
    "status_text",
    "summary_table",
    "swift_code",
    "terminal_text",
    "text_table",
    "throughput_unit",
    "time_text",
]

#: Axes whose values are byte sizes (limits), shown as sizes.
LIMIT_AXES = ("cache_limit", "memory_limit")


def terminal_text(text: str) -> str:
    """``text`` safe to print on a terminal: control and format characters shown as escapes.

    Error messages, labels and grid values come from users and workloads; an escape sequence in
    them would otherwise move the cursor, recolour or retitle the terminal. Newlines and tabs stay.
    """
    return "".join(
        char if char in "\n\t" or unicodedata.category(char) not in ("Cc", "Cf")
        else char.encode("unicode_escape").decode("ascii")
        for char in text
    )


#: What the process memory column is on this platform: jetsam's number on macOS, the resident set elsewhere.
PROCESS_MEMORY = "physical footprint" if sys.platform == "darwin" else "resident set"


def seconds_text(seconds: float) -> str:
    """A short time: ``812 µs``, ``3.41 ms``, ``2.05 s``."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def limit_text(value: int | float) -> str:
    """A limit as people read it: "0", "16MB", "unlimited"."""
    return "0" if value == 0 else format_size(value)


def point_text(point: Mapping[str, Any], params: Sequence[str]) -> str:
    """A grid point in words: "cache limit 16MB, memory limit 1GB, dtype=q4"."""
    parts = []
    for name in params:
        value = _plain(point[name])
        if name in LIMIT_AXES:
            parts.append(f"{name.replace('_', ' ')} {limit_text(value)}")
        else:
            parts.append(f"{name}={value}")
    return ", ".join(parts)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _speed(value: float, unit: str) -> str:
    return f"{value:,.0f} {unit}/s" if abs(value) >= 1000 else f"{value:.4g} {unit}/s"


def _limits(rows: pd.DataFrame) -> str:
    return ", ".join(limit_text(v) for v in rows["cache_limit"])


def python_code(cache_limit: int | None, why_not: str = "") -> str:
    """The line that applies a cache limit in Python (a comment saying why not, without one)."""
    if cache_limit is None:
        return f"# no cache limit recommended: {why_not}"
    if cache_limit >= UNLIMITED:
        return "mx.set_cache_limit(2**63 - 1)  # unlimited"
    return f"mx.set_cache_limit({cache_limit})  # {limit_text(cache_limit)}"


def swift_code(cache_limit: int | None, why_not: str = "") -> str:
    """The line that applies a cache limit in an app using MLX Swift."""
    if cache_limit is None:
        return f"// no cache limit recommended: {why_not}"
    if cache_limit >= UNLIMITED:
        return "MLX.Memory.cacheLimit = Int.max  // unlimited"
    return f"MLX.Memory.cacheLimit = {cache_limit:_}  // {limit_text(cache_limit)}"


def reason(decision: Decision, unit: str) -> str:
    """The recommendation in plain sentences: what was chosen, against what, and how sure it is."""
    from mlxtune.decision import FAST, NO_RUNS, OVER_BUDGET, UNDECIDED, least_runs

    points, params, tol = decision.points, decision.params, f"{decision.tolerance:.0%}"
    measured = points[points["verdict"] != NO_RUNS]
    if measured.empty:
        return "No recommendation: no run succeeded."
    fits = measured[measured["verdict"] != OVER_BUDGET]
    if fits.empty:
        smallest = measured.loc[measured["footprint"].idxmin()]
        return (f"Nothing fits the budget of {format_size(decision.budget)}: the smallest footprint measured "
                f"is {format_size(int(smallest['footprint']))} ({point_text(smallest, params)}).")
    if not decision.compared:  # say so, not "the fastest"
        limit = limit_text(measured["cache_limit"].iloc[0])
        return _notes(f"Only one cache limit was measured ({limit}), so there is nothing to compare: sweep "
                      "two or more to get a recommendation.", decision)
    fewest = int(fits["runs"].min())
    if decision.best is None:
        runs, _ = _words(decision)
        least = least_runs(decision.paired, decision.confidence)
        text = (f"Not enough {runs} to decide: each point needs at least {least} successful {runs} "
                f"(the fewest here is {fewest}); sweep with more repeats, or until decided (repeats auto).")
        return _notes(text, decision)
    best = points.loc[decision.best]
    against = f"{point_text(best, params)} at {_speed(best['speed'], unit)}"
    if decision.choice is None:
        text = (f"Undecided: no point is shown within {tol} of the fastest ({against}) yet. "
                + _more(decision.points[decision.points["verdict"] == UNDECIDED], decision))
        return _notes(text, decision)
    chosen = points.loc[decision.choice]
    what = point_text(chosen, params)
    figures = f"{_speed(chosen['speed'], unit)}, footprint {format_size(int(chosen['footprint']))}"
    smaller = fits[fits["cache_limit"] < chosen["cache_limit"]]
    if decision.decided and len(fits) > 1 and (fits["verdict"] == FAST).all():
        subject = "the cache limit does" if len(params) == 1 else "these settings do"
        text = (f"All {len(fits)} points are shown within {tol} of the fastest, so {subject} not measurably "
                f"change throughput here; the smallest, {what}, is recommended ({figures}).")
    elif decision.choice == decision.best:
        text = f"{what[0].upper()}{what[1:]} is the fastest ({figures})"
        text += _below(smaller, tol) if len(smaller) else " and the smallest limit measured."
    else:
        text = (f"{what[0].upper()}{what[1:]} gives {figures}: shown within {tol} of the fastest ({against}; "
                f"at least {chosen['ratio_low']:.0%} of it with {decision.confidence:.0%} confidence)")
        text += _below(smaller, tol) if len(smaller) else "."
    if not decision.decided:
        still = decision.undecided
        text = (f"Undecided below {limit_text(chosen['cache_limit'])}: {what} is shown within {tol} of the "
                f"fastest and safe to use, but {_limits(still)} cannot be told yet. "
                + _more(still, decision))
    return _notes(text + _edge(smaller, decision), decision)


def _below(smaller: pd.DataFrame, tol: str) -> str:
    """What the limits below a decided choice were shown to be."""
    from mlxtune.decision import SLOW

    if smaller["verdict"].eq(SLOW).all():
        return f"; every smaller limit is shown more than {tol} slower."
    return "; no smaller limit is shown within it."


def _edge(smaller: pd.DataFrame, decision: Decision) -> str:
    """Why points at the edge of the tolerance (below the choice) leave the answer decided."""
    from mlxtune.decision import EDGE, EDGE_SHARE

    edge = smaller[smaller["verdict"] == EDGE]
    if edge.empty:
        return ""
    figures = ", ".join(f"{limit_text(row['cache_limit'])} at {row['ratio']:.3f}x "
                        f"[{row['ratio_low']:.3f}, {row['ratio_high']:.3f}]" for _, row in edge.iterrows())
    they = "it is" if len(edge) == 1 else "they are"
    return (f" At the edge of the {decision.tolerance:.0%} tolerance: {figures} of the fastest, pinned "
            f"within {decision.tolerance * EDGE_SHARE:.1%} of it either way. Which side cannot be told in a "
            f"time worth waiting, so {they} not picked and the answer stands.")


def _words(decision: Decision) -> tuple[str, str]:
    """What the decision's rows and rounds are called: blocks and cycles when paired, else runs and rounds."""
    return ("blocks", "cycles") if decision.paired else ("runs", "rounds")


def _more(open_points: pd.DataFrame, decision: Decision) -> str:
    """How many more rounds (cycles) would likely decide the open points."""
    runs, rounds = _words(decision)
    if len(open_points) and open_points["more_rounds"].isna().all():
        return f"They have too few successful {runs} to judge yet: measure more {rounds}."
    more = float(open_points["more_rounds"].max()) if len(open_points) else math.inf
    if not math.isfinite(more):
        return (f"Some sit so close to the tolerance that more {runs} are unlikely to settle them: accept a "
                "larger tolerance, or measure on a quieter machine.")
    if decision.paired:
        return f"About {more:.0f} more {rounds[:-1] if more == 1 else rounds} would likely decide."
    return f"About {more:.0f} more round{'s' if more != 1 else ''} of runs would likely decide."


def _notes(text: str, decision: Decision) -> str:
    """What else the reader should know: points over budget, more cache measured slower, noisy runs."""
    from mlxtune.decision import OVER_BUDGET

    points, params = decision.points, decision.params
    over = int((points["verdict"] == OVER_BUDGET).sum())
    if over:
        text += f" {over} of {len(points)} points exceed the budget of {format_size(decision.budget)}."
    for smaller, larger, ratio, _ in decision.violations[:2]:
        slower, than = point_text(points.loc[larger], params), limit_text(points.loc[smaller, "cache_limit"])
        text += (f" More cache was slower here: {slower} ran at {ratio:.2f}x the speed of {than} (memory "
                 "pressure can do this), so those limits were not pooled.")
    words = noise_text(decision.noise, decision.paired)
    return f"{text} {words}" if words else text


def noise_text(noise: Noise, paired: bool = False) -> str:
    """One or two sentences when the runs (blocks) were unsteady; "" when they were steady."""
    if paired:  # what moves a whole cycle cancels in its ratios: say so, not "the machine was busy"
        if noise.states is None and noise.spread <= 1.25:
            return ""
        return (f"Blocks at the same limit differ by up to {noise.spread:.1f}x (the machine's speed moved); "
                "each limit is compared with the fastest inside the same cycles, so what moves a whole "
                "cycle cancels.")
    parts = []
    if noise.states is not None:
        parts.append(f"Runs fell into two speed states about {noise.states:.2f}x apart (a state lasts a "
                     "whole run): the machine was busy or changed clocks.")
    elif noise.spread > 1.25:
        parts.append(f"Runs at the same limit differ by up to {noise.spread:.1f}x: the machine was busy.")
    if noise.drift_p < 0.01 and abs(noise.drift) > 0.05:
        way = "down" if noise.drift < 0 else "up"
        parts.append(f"Throughput drifted {way} by about {abs(noise.drift):.0%} from the first run to the "
                     "last (heat, or other work); interleaved rounds keep this from favouring any limit.")
    return " ".join(parts)


def headline(decision: Decision, unit: str) -> str:
    """The recommendation in one sentence."""
    from mlxtune.decision import FAST, JUDGED

    if decision.choice is None:
        return "No cache limit can be recommended from these runs yet."
    if not decision.compared:
        return "One cache limit was measured: nothing was compared, so none is recommended."
    chosen = decision.points.loc[decision.choice]
    where = "".join(f", {name}={_plain(chosen[name])}" for name in decision.params if name != "cache_limit")
    text = (f"Set the cache limit to {limit_text(chosen['cache_limit'])}{where}: "
            f"{_speed(chosen['speed'], unit)} with a footprint of {format_size(int(chosen['footprint']))}")
    if not decision.decided:
        return text + " (smaller limits are still undecided)."
    fits = decision.points[decision.points["verdict"].isin(JUDGED)]
    return text + (" (the cache limit made no measurable difference)." if len(fits) > 1
                   and (fits["verdict"] == FAST).all() else ".")


# -- tables: one display model for HTML, Markdown, the terminal and the notebook -----------------


_SIZE_COLUMNS = {"cache_limit", "memory_limit", "peak_memory_max", "cache_after_max", "footprint",
                 "process_rss_max"}


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


def number(value: Any) -> str:
    """A measured number for a table: 4 significant digits, thousands separated; "–" for missing."""
    if value is None:
        return "–"
    value = float(value)
    if not math.isfinite(value):
        return "–"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def param_text(name: str, value: Any) -> str:
    """A grid value as people read it: limits as :func:`mlxtune.view.limit_text`, sizes as sizes, the
    value itself otherwise."""
    if not isinstance(value, (int, float, np.integer, np.floating)):
        return str(value)
    if name in LIMIT_AXES:
        return limit_text(value)
    return format_size(value) if name in _SIZE_COLUMNS else str(value)


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
    summary = result.summary()
    unit = throughput_unit(result, summary)
    decision = result.decision(rec.budget if rec else None, rec.tolerance if rec else 0.05).points
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


def ratio_text(ratio: float, low: float, high: float) -> str:
    """A speed relative to the best with its bounds: "0.96x [0.91, 1.00]"; "–" when unknown."""
    if not math.isfinite(ratio):
        return "–"
    return f"{ratio:.2f}x [{low:.2f}, {high:.2f}]"


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


def cell_text(column: str, value: Any) -> str:
    """One raw run value as text for a person: exact, but never a sentinel or an epoch."""
    if column in LIMIT_AXES and isinstance(value, (int, float, np.integer, np.floating)):
        return limit_text(value) if value >= UNLIMITED or value == 0 else f"{int(value)}"
    if column == "started_at" and isinstance(value, (int, float, np.floating)) and math.isfinite(value):
        return time_text(float(value))
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(value) else f"{value:.10g}"
    return str(value)


def time_text(epoch: float) -> str:
    """A moment as a report shows it: the ISO 8601 UTC time of the files (:func:`mlxtune.store.iso_time`)."""
    return iso_time(epoch)


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
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def status_text(result: SweepResult) -> str:
    """Whether the sweep finished, in a few words: "complete: 15 runs" or "incomplete: 9 of 15 ...";
    a paired sweep counts its blocks and whole runs together ("complete: 73 blocks and 2 runs")."""
    failed = f", {result.failed_runs} failed" if result.failed_runs else ""
    runs = len(result.runs)
    measured = f"{len(result.blocks)} blocks and {runs} runs" if result.design == "paired" else f"{runs} runs"
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
        return (f"Whole runs: {len(result.runs)} runs in {rounds} round{'s' if rounds != 1 else ''}, each "
                "point once per round in a shuffled order.")
    blocks = result.blocks
    cycles = int(blocks["repeat"].max()) + 1
    limits = blocks["cache_limit"].nunique()
    generations = int(blocks["generation"].max()) + 1 if "generation" in blocks else 1
    sizes = result.options.get("blocks") or {}
    steps = (f" ({len(blocks)} blocks of {sizes['block']} timed steps after {sizes['settle']} settling "
             "steps)" if {"block", "settle"} <= set(sizes) else f" ({len(blocks)} blocks)")
    text = (f"Paired within runs: {cycles} cycle{'s' if cycles != 1 else ''} of {limits} limits in "
            f"{generations} generation{'s' if generations != 1 else ''}{steps}; each limit's speed is "
            "compared with the fastest limit's in the cycles both ran.")
    whole = sorted({int(v) for v in result.runs["cache_limit"]}) if len(result.runs) else []
    if whole:
        text += (f" Memory: whole runs at {', '.join(limit_text(v) for v in whole)}; for the other limits, "
                 "what their blocks held and sampled, beside the run's live state.")
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


# -- fleets: one answer for several hosts ---------------------------------------------------------


def fleet_reason(choice: FleetChoice, decisions: Mapping[str, Decision], failures: Mapping[str, str],
                 tolerance: float) -> str:
    """The fleet's answer in sentences: the limit every host shows fast, or which host keeps it open."""
    tol, hosts = f"{tolerance:.0%}", len({*decisions, *choice.missing})
    if choice.missing:
        why = "; ".join(f"{h}: {_no_answer(decisions.get(h), failures.get(h))}" for h in choice.missing)
        return (f"No cache limit for the whole fleet: {len(choice.missing)} of {hosts} hosts have nothing "
                f"to decide on ({why}). Each measured host's own answer is below.")
    if choice.verdicts.empty:
        return "No cache limit for the whole fleet: no grid point was measured on every host."
    budgets = any(d.budget is not None for d in decisions.values())
    within = ", each within its memory budget" if budgets else ""
    if choice.point is None:
        own = "; ".join(f"{host}: {_own_answer(d)}" for host, d in decisions.items())
        return (f"No cache limit is shown within {tol} of the fastest on every host{within} yet ({own}). "
                "Sweep longer (repeats auto: until decided) or accept a larger tolerance.")
    what = point_text(choice.point, list(choice.point))
    text = (f"{what[0].upper()}{what[1:]} is the smallest setting shown within {tol} of the fastest on all "
            f"{hosts} hosts{within}.")
    if not choice.decided:
        limits = ", ".join(map(limit_text, choice.open_limits))
        text += f" Smaller limits ({limits}) are still undecided on some host: more runs could lower it."
    return text


def _no_answer(decision: Decision | None, failure: str | None) -> str:
    """Why a host gives the fleet nothing to decide on."""
    from mlxtune.decision import NO_RUNS, OVER_BUDGET

    if decision is None or failure:  # a host lost mid-sweep: why, before what its few runs show
        return failure or "no result"
    measured = decision.points[decision.points["verdict"] != NO_RUNS]
    if len(measured) and (measured["verdict"] == OVER_BUDGET).all():
        return f"nothing measured fits its budget of {format_size(decision.budget)}"
    return "too few successful runs"


def _own_answer(decision: Decision) -> str:
    if decision.choice is None:
        return "undecided"
    return limit_text(decision.points.loc[decision.choice, "cache_limit"])


def fleet_headline(rec: FleetRecommendation) -> str:
    """The fleet's answer in one sentence."""
    if rec.cache_limit is None:
        return "No cache limit can be recommended for every host from these runs yet."
    return (f"Set the cache limit to {limit_text(rec.cache_limit)} on every host"
            + ("." if rec.decided else " (smaller limits are still undecided)."))


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

