"""Files from sweep results: a self-contained HTML report, Markdown, CSV, and JSON that loads back.

Takes results, never MLX. Every file is rendered in memory, then written through
:mod:`mlxtune.files` (atomic replaces; a report and its figures change together; special files are
never replaced), so an error while rendering or writing never leaves a half-written file over a
good one. Every string that came from a user is escaped: HTML through jinja2's autoescaping,
Markdown through :func:`markdown_text`. Loading reads JSON only and checks it, so a truncated,
foreign or newer file gives one ValueError naming the file.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import html
import io
import json
import math
import os
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import numpy as np
import pandas as pd

from mlxtune import view
from mlxtune.files import write_atomic, write_together
from mlxtune.measure import (
    MEASURED_COLUMNS,
    SAMPLED_COLUMNS,
    SCHEMA_VERSION,
    TIMELINE_COLUMNS,
    fill_unsampled,
    timelines_frame,
)
from mlxtune.result import SweepResult
from mlxtune.units import format_size

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from mlxtune.result import Recommendation

__all__ = [
    "FIGURE_KINDS",
    "FILE_FORMAT",
    "load",
    "markdown_image",
    "markdown_text",
    "result_html_fragment",
    "summary_html",
    "write_csv",
    "write_html",
    "write_json",
    "write_markdown",
]

#: The marker every results file carries, beside its ``schema_version``.
FILE_FORMAT = "mlxtune.sweep"
#: Figures a report shows, in order (see :mod:`mlxtune.plots`).
FIGURE_KINDS = ("tradeoff", "throughput", "memory", "timeline", "order")
_CAPTIONS = {
    "tradeoff": "Speed against the memory a cache limit changes (the peak above what a run started with): "
    "one point per cache limit, error bars the quartiles of the runs, the Pareto front dashed, the "
    "recommended limit starred once decided.",
    "throughput": "Median throughput against cache limit, with the quartiles of the runs.",
    "memory": "Memory against cache limit: the largest value over the runs, bars down to the smallest.",
    "timeline": "Memory during a typical run at each cache limit (the run with the median throughput): the "
    "cache fills and stops at its limit (dashed); above, the cache; below, everything MLX held.",
    "order": "Every run's throughput in the order the runs ran: a slope shared by all limits is drift, a "
    "step a busy spell; interleaving keeps either from favouring a limit.",
}
_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_SIZE_COLUMNS = {"cache_limit", "memory_limit", "peak_memory_max", "cache_after_max", "footprint",
                 "process_rss_max"}


# -- JSON: save and load ------------------------------------------------------------------------


def to_document(result: SweepResult) -> dict[str, Any]:
    """The JSON-ready form of a result: metadata, column dtypes, raw runs and the summary.

    Options, environment and run values that JSON cannot hold are saved as their ``repr``, so
    whatever was measured can be saved. The summary is derived (``load`` recomputes it): if it
    cannot be computed, the file holds null there rather than losing the runs.
    """
    runs = result.runs
    try:
        summary: list[dict[str, Any]] | None = _records(result.summary())
    except Exception:  # the raw runs matter more than a derived table
        summary = None
    return {
        "format": FILE_FORMAT,
        "schema_version": SCHEMA_VERSION,
        "label": result.label,
        "workload": result.workload,
        "unit": result.unit,
        "complete": bool(result.complete),
        "planned_runs": int(result.planned_runs),
        "stop_reason": result.stop_reason,
        "params": list(result.params),
        "options": _jsonable(result.options),
        "environment": _jsonable(result.environment),
        "columns": [[str(name), _saved_dtype(runs[name])] for name in runs.columns],
        "runs": _records(runs),
        "summary": summary,
        "recommendation": _recommendation_document(result),
        "timelines": {name: result.timelines[name].tolist() for name in TIMELINE_COLUMNS},
    }


def _recommendation_document(result: SweepResult) -> dict[str, Any] | None:
    """The recommendation at the default tolerance and no budget, with its interval and state (derived:
    ``load`` does not read it back); null when it cannot be computed."""
    try:
        return _jsonable(result.recommend().to_dict())
    except Exception:  # the raw runs matter more than a derived answer
        return None


def write_json(result: SweepResult, path: str | os.PathLike[str]) -> str:
    """Save raw runs, summary, environment and options with a schema version; :func:`load` reads it."""
    text = json.dumps(to_document(result), indent=1, allow_nan=False, ensure_ascii=False)
    return write_atomic(path, text + "\n")


def load(path: str | os.PathLike[str]) -> SweepResult:
    """The :class:`SweepResult` saved at ``path`` by :func:`write_json`, equal to the saved one.

    Only JSON is parsed, never code. A file that is not UTF-8 JSON, not an mlxtune results file,
    from a newer mlxtune, or inconsistent inside raises one ValueError naming the file and the
    problem. A missing file raises FileNotFoundError.
    """
    name = os.fspath(path)
    raw = Path(name).read_bytes()
    try:
        document = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{name}: not an mlxtune results file: not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{name}: not an mlxtune results file: not valid JSON ({exc.msg} at line {exc.lineno} column "
            f"{exc.colno}); is it truncated, or another kind of file?"
        ) from None
    except RecursionError:
        raise ValueError(f"{name}: not an mlxtune results file: JSON nested too deeply") from None
    try:
        return from_document(document)
    except _FileProblem as exc:
        raise ValueError(f"{name}: {exc}") from None


class _FileProblem(Exception):
    """What is wrong with a results document; :func:`load` adds the file name."""


def from_document(document: Any) -> SweepResult:
    """Check a parsed results document and build the result (see :func:`load`)."""
    if not isinstance(document, dict) or document.get("format") != FILE_FORMAT:
        raise _FileProblem(
            f'not an mlxtune results file (expected a JSON object with "format": "{FILE_FORMAT}")'
        )
    version = document.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _FileProblem(f"invalid schema_version {_short(version)}: expected a whole number from 1")
    if version > SCHEMA_VERSION:
        raise _FileProblem(
            f"written by a newer mlxtune (schema version {version}; this version reads up to "
            f"{SCHEMA_VERSION}): upgrade mlxtune to load it"
        )
    fields = {
        "label": str, "workload": str, "unit": str, "complete": bool, "planned_runs": int,
        "params": list, "options": dict, "environment": dict, "columns": list, "runs": list,
    }
    for key, kind in fields.items():
        value = document.get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise _FileProblem(f"field {key!r} is {_short(value)}, expected {_KIND_NAMES[kind]}")
    stop_reason = document.get("stop_reason", "")
    if not isinstance(stop_reason, str):
        raise _FileProblem(f"field 'stop_reason' is {_short(stop_reason)}, expected a string")
    runs = _runs_from(document["columns"], document["runs"], document["params"], version)
    return SweepResult(
        runs=runs,
        params=list(document["params"]),
        label=document["label"],
        workload=document["workload"],
        unit=document["unit"],
        complete=document["complete"],
        planned_runs=document["planned_runs"],
        stop_reason=stop_reason,
        environment=document["environment"],
        options=document["options"],
        schema_version=version,
        timelines=_timelines_from(document.get("timelines"), len(runs)),
    )


_KIND_NAMES = {str: "a string", bool: "true or false", int: "a whole number", list: "a list",
               dict: "an object"}
_DTYPE_RE = re.compile(r"^(?:u?int(?:8|16|32|64)|float(?:16|32|64)|bool|str|string|object)$")
_TEXT = ("unit", "error")
_NUMERIC = tuple(name for name in MEASURED_COLUMNS if name not in _TEXT)


def _timelines_from(saved: Any, runs: int) -> pd.DataFrame:
    """The timelines saved with the runs (none before schema version 2), checked like the runs."""
    if saved is None:
        return timelines_frame([])
    if not isinstance(saved, dict) or set(saved) != set(TIMELINE_COLUMNS):
        names = ", ".join(TIMELINE_COLUMNS)
        raise _FileProblem(f"field 'timelines' must be an object with the lists {names}")
    lengths = {len(v) if isinstance(v, list) else -1 for v in saved.values()}
    if len(lengths) != 1 or -1 in lengths:
        raise _FileProblem("field 'timelines' must hold lists of one length")
    frame = pd.DataFrame({name: _column(f"timelines.{name}", "float64" if name == "seconds" else "int64",
                                        saved[name]) for name in TIMELINE_COLUMNS})
    if len(frame) and not frame["run"].between(0, runs - 1).all():
        raise _FileProblem("field 'timelines' names a run that is not in the file")
    return frame


def _runs_from(columns: list[Any], rows: list[Any], params: list[Any], version: int) -> pd.DataFrame:
    names: list[str] = []
    dtypes: list[str] = []
    for entry in columns:
        if (not isinstance(entry, list) or len(entry) != 2 or not all(isinstance(x, str) for x in entry)
                or not _DTYPE_RE.match(entry[1])):
            raise _FileProblem(f"bad column entry {_short(entry)}: expected [name, dtype] with a plain dtype")
        names.append(entry[0])
        dtypes.append(entry[1])
    if len(set(names)) != len(names):
        raise _FileProblem("a column is listed twice")
    if (not params or not all(isinstance(p, str) for p in params) or params[0] != "cache_limit"
            or len(set(params)) != len(params)):
        raise _FileProblem(f"bad params {_short(params)}: expected column names starting with cache_limit")
    sampled = () if version >= 2 else SAMPLED_COLUMNS  # older files: filled in from the snapshots
    required = [*params, *(name for name in MEASURED_COLUMNS if name not in sampled)]
    missing = [name for name in required if name not in names]
    if missing:
        raise _FileProblem(f"the runs have no column {missing[0]!r}")
    known = set(names)
    for index, row in enumerate(rows):
        if not isinstance(row, dict) or not set(row) <= known:
            raise _FileProblem(f"run {index} is {_short(row)}, expected an object with the listed columns")
    data = {name: _column(name, dtype, [row.get(name) for row in rows])
            for name, dtype in zip(names, dtypes, strict=True)}
    frame = fill_unsampled(pd.DataFrame(data, columns=names))
    for name in ("cache_limit", *_NUMERIC) if len(frame) else ():
        if not pd.api.types.is_numeric_dtype(frame[name]) or pd.api.types.is_bool_dtype(frame[name]):
            raise _FileProblem(f"column {name!r} must be numeric, not {frame[name].dtype}")
    for name in _TEXT:
        if not all(isinstance(v, str) for v in frame[name]):
            raise _FileProblem(f"column {name!r} must hold strings")
    limits = frame["cache_limit"].astype(float)
    bad = ~(limits.notna() & (limits >= 0) & (limits == limits.round()))
    if bad.any():
        index = int(bad.to_numpy().argmax())
        raise _FileProblem(f"run {index} has cache_limit {_short(rows[index].get('cache_limit'))}: every run "
                           "needs a whole number of bytes >= 0")
    return frame


def _column(name: str, dtype: str, values: list[Any]) -> pd.Series:
    """One saved column back in its dtype; values that do not fit it are a file problem."""
    def fits(value: Any) -> bool:
        if dtype.startswith(("int", "uint")):
            return isinstance(value, int) and not isinstance(value, bool)
        if dtype.startswith("float"):
            return value is None or value in ("inf", "-inf") or (
                isinstance(value, (int, float)) and not isinstance(value, bool))
        if dtype == "bool":
            return isinstance(value, bool)
        if dtype in ("str", "string"):
            return value is None or isinstance(value, str)
        return value is None or isinstance(value, (str, int, float, bool))

    bad = next((v for v in values if not fits(v)), _NOTHING)
    if bad is not _NOTHING:
        raise _FileProblem(f"column {name!r} holds {_short(bad)}, which is not a {dtype} value")
    try:
        return pd.Series(values, dtype=object).astype(dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        raise _FileProblem(f"column {name!r} does not fit dtype {dtype}: {exc}") from None


_NOTHING = object()


def _short(value: Any) -> str:
    plain = isinstance(value, (str, int, float, bool, type(None)))
    text = json.dumps(value) if plain else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def _jsonable(value: Any) -> Any:
    """``value`` with numpy scalars unwrapped, NaN as null, infinities as "inf"/"-inf", the rest repr'd."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return repr(value)


def _saved_dtype(column: pd.Series) -> str:
    """The dtype a column is saved as: its own when :func:`load` accepts it, else object."""
    name = str(column.dtype)
    return name if _DTYPE_RE.match(name) else "object"


def _cell(value: Any) -> Any:
    """A frame cell as a JSON scalar (lists and other objects as their repr)."""
    value = _jsonable(value)
    return repr(value) if isinstance(value, (list, dict)) else value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    columns = [str(c) for c in frame.columns]
    return [{c: _cell(v) for c, v in zip(columns, row, strict=True)} for row in frame.itertuples(index=False)]


# -- CSV ----------------------------------------------------------------------------------------


def write_csv(result: SweepResult, path: str | os.PathLike[str]) -> str:
    """The tidy runs, one row per run, each swept parameter its own column.

    A text cell that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``,
    a tab or a carriage return) is written with a leading ``'``, as OWASP advises; numbers are untouched.
    """
    runs = result.runs.copy()
    for name in runs.columns:
        if not pd.api.types.is_numeric_dtype(runs[name]):
            runs[name] = runs[name].map(_inert_cell)
    return write_atomic(path, runs.to_csv(index=False, lineterminator="\n"))


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _inert_cell(value: Any) -> Any:
    return f"'{value}" if isinstance(value, str) and value.startswith(_FORMULA_STARTS) else value


# -- tables shared by HTML and Markdown ---------------------------------------------------------


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
    if name in view.LIMIT_AXES:
        return view.limit_text(value)
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
    headers = [p.replace("_", " ") for p in params] + [
        f"median {unit}/s", "x best (95% bounds)", "verdict", "quartiles", "footprint", "peak active",
        "cache held", "process peak", "runs",
    ]
    rows = []
    for (index, point), recommended in zip(summary.iterrows(), marked, strict=True):
        cells = [param_text(p, point[p]) for p in params]
        if recommended:
            cells[0] += f" {recommended_mark(rec)}"
        failed = int(point["failed"])
        verdict = decision.loc[index]
        cells += [
            number(point["throughput_median"]),
            ratio_text(verdict["ratio"], verdict["ratio_low"], verdict["ratio_high"]),
            str(verdict["verdict"]),
            f"{number(point['throughput_q1'])} – {number(point['throughput_q3'])}",
            format_size(int(point["footprint"])),
            format_size(int(point["peak_memory_max"])),
            format_size(int(point["cache_after_max"])),
            format_size(int(point["process_peak_max"])),
            f"{int(point['runs'])}" + (f" ({failed} failed)" if failed else ""),
        ]
        rows.append(Row(cells, css="recommended" if recommended else ""))
    return Table(headers, rows, text_columns=len(params))


def ratio_text(ratio: float, low: float, high: float) -> str:
    """A speed relative to the best with its bounds: "0.96x [0.91, 1.00]"; "–" when unknown."""
    if not math.isfinite(ratio):
        return "–"
    return f"{ratio:.2f}x [{low:.2f}, {high:.2f}]"


def runs_table(result: SweepResult) -> Table:
    """Every run with every column, exact values."""
    runs = result.runs

    def text(value: Any) -> str:
        if isinstance(value, (float, np.floating)):
            return "" if math.isnan(value) else f"{value:.10g}"
        return str(value)

    rows = [Row([text(v) for v in row], css="failed" if row.error else "")
            for row in runs.itertuples(index=False)]
    return Table([str(c) for c in runs.columns], rows, text_columns=0)


def environment_rows(result: SweepResult) -> list[tuple[str, str]]:
    """Where and how it was measured, in reading order; unknown environment keys follow."""
    env = dict(result.environment)
    names = {"mlxtune": "mlxtune", "mlx": "MLX", "mlx_lm": "mlx-lm", "backend": "backend",
             "device_name": "device", "device_memory": "device memory", "system_memory": "system memory",
             "os": "OS", "python": "Python", "date": "date"}
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
    rows += [(f"option {k}", _plain_text(v)) for k, v in result.options.items()]
    return rows


def _plain_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(_jsonable(value), ensure_ascii=False)


def status_text(result: SweepResult) -> str:
    """Whether the sweep finished, in a few words: "complete: 15 runs" or "incomplete: 9 of 15 ..."."""
    runs = len(result.runs)
    failed = f", {result.failed_runs} failed" if result.failed_runs else ""
    if result.complete:
        return f"complete: {runs} runs{failed}"
    reason = f" ({result.stop_reason.rstrip('.')})" if result.stop_reason else ""
    return f"incomplete: {runs} of {result.planned_runs} planned runs{failed}{reason}"


def recommended_mark(rec: Recommendation) -> str:
    """How a table marks the recommended row: a star once decided, else that it is only safe so far."""
    return "★ recommended" if rec.decided else "(safe; smaller limits undecided)"


def code_snippets(rec: Recommendation) -> tuple[str, str]:
    """Python and Swift to paste, each with the import it needs."""
    return f"import mlx.core as mx\n\n{rec.python_code}", f"import MLX\n\n{rec.swift_code}"


def throughput_unit(result: SweepResult, summary: pd.DataFrame) -> str:
    """What throughput counts ("tokens"): the first unit named in ``summary``, else the result's."""
    units = [u for u in summary.get("unit", pd.Series(dtype=str)).dropna() if u]
    return str(units[0]) if units else result.unit


# -- figures ------------------------------------------------------------------------------------


def figure_bytes(figure: Figure, fmt: str = "svg", dpi: int = 110) -> bytes:
    """A figure as SVG or PNG bytes, reproducible (no date, fixed ids)."""
    from matplotlib import rc_context

    buffer = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    with rc_context({"svg.hashsalt": "mlxtune", "svg.fonttype": "path"}):
        figure.savefig(buffer, format=fmt, dpi=dpi, metadata=metadata)
    return buffer.getvalue()


def data_uri(figure: Figure, fmt: str = "svg") -> str:
    """A figure as a ``data:`` URI for an ``<img>``: inline, and unable to run anything."""
    check_format(fmt)
    mime = {"svg": "image/svg+xml", "png": "image/png"}[fmt]
    return f"data:{mime};base64,{base64.b64encode(figure_bytes(figure, fmt)).decode('ascii')}"


def check_format(fmt: str) -> None:
    """ValueError unless ``fmt`` is an image format reports can embed."""
    if fmt not in ("svg", "png"):
        raise ValueError(f"unknown image format {fmt!r}: expected svg or png")


def _figures(result: SweepResult, kinds: Iterable[str], budget: int | str | None,
             tolerance: float) -> list[tuple[str, Figure]]:
    if not len(result.runs) or result.summary()["throughput_median"].notna().sum() == 0:
        return []
    figures = []
    for kind in kinds:
        if kind == "timeline" and result.timelines.empty:
            continue  # results saved before runs were sampled
        options: dict[str, Any] = {"budget": budget, "tolerance": tolerance} if kind == "tradeoff" else {}
        figures.append((kind, result.plot(kind=kind, **options)))
    return figures


# -- HTML ---------------------------------------------------------------------------------------


def render_template(name: str, **context: Any) -> str:
    """Render one of the package's HTML templates; every value is autoescaped.

    ``written`` (the page footer's time, UTC) is filled in here, so every page says it the same way.
    """
    written = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return _TEMPLATES.get_template(name).render(written=written, **context)


def _template_context(result: SweepResult, budget: int | str | None, tolerance: float) -> dict[str, Any]:
    rec = result.recommend(budget=budget, tolerance=tolerance)
    python_code, swift_code = code_snippets(rec)
    return {
        "result": result,
        "status": status_text(result),
        "recommendation": rec,
        "headline": view.headline(result.decision(budget, tolerance), result.unit),
        "python_code": python_code,
        "swift_code": swift_code,
        "summary": summary_table(result, rec),
        "version": result.environment.get("mlxtune", ""),
    }


def render_html(
    result: SweepResult,
    *,
    title: str | None = None,
    budget: int | str | None = None,
    tolerance: float = 0.05,
    figures: Sequence[str] = FIGURE_KINDS,
    image_format: str = "svg",
) -> str:
    """The report as one HTML document (figures inline as data URIs, no scripts, no network)."""
    check_format(image_format)
    context = _template_context(result, budget, tolerance)
    items = [
        {"kind": kind, "uri": data_uri(fig, image_format), "caption": _CAPTIONS[kind],
         "alt": f"{kind} figure of {result.label}"}
        for kind, fig in _figures(result, figures, budget, tolerance)
    ]
    return render_template(
        "report.html.j2",
        **context,
        title=title or f"mlxtune report: {result.label}",
        figures=items,
        runs=runs_table(result),
        environment=environment_rows(result),
    )


def write_html(result: SweepResult, path: str | os.PathLike[str], **options: Any) -> str:
    """Write :func:`render_html` (same options) to ``path`` atomically; returns the path."""
    return write_atomic(path, render_html(result, **options))


def summary_html(result: SweepResult, *, caption: str = "") -> str:
    """The summary table alone as HTML (the recommended row marked), as a notebook shows it."""
    return render_template("table.html.j2", table=summary_table(result, result.recommend()), css="summary",
                           caption=caption)


def result_html_fragment(result: SweepResult) -> str:
    """A small HTML block for notebooks: label, status, the recommendation, the summary table."""
    if not len(result.runs):
        return f"<div class='mlxtune-result'><strong>{html.escape(result.label)}</strong>: no runs yet</div>"
    context = _template_context(result, None, 0.05)
    return render_template("fragment.html.j2", **context)


# -- Markdown -----------------------------------------------------------------------------------

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|#])")


def markdown_text(value: Any) -> str:
    """Text safe inside a Markdown table cell or paragraph: HTML escaped, one line, syntax escaped."""
    text = " ".join(str(value).splitlines())
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def markdown_table(table: Table, bold: Sequence[Sequence[bool]] | None = None) -> str:
    """A pipe table; cells where ``bold`` is true are emphasised."""
    aligns = [":---" if i < table.text_columns else "---:" for i in range(len(table.headers))]
    lines = ["| " + " | ".join(markdown_text(h) for h in table.headers) + " |", "|" + "|".join(aligns) + "|"]
    for r, row in enumerate(table.rows):
        cells = [markdown_text(c) for c in row.cells]
        if bold is not None:
            cells = [f"**{c}**" if bold[r][i] and c else c for i, c in enumerate(cells)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def code_block(code: str, language: str) -> str:
    """A fenced block whose fence is longer than any backtick run inside ``code``."""
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{code}\n{fence}"


def markdown_image(alt: str, file_name: str) -> str:
    """An image link to a file beside the Markdown; the name is URL-quoted (spaces, brackets)."""
    return f"![{markdown_text(alt)}]({urllib.parse.quote(file_name)})"


def figure_files(path: str | os.PathLike[str], names: Iterable[str]) -> dict[str, Path]:
    """Where the PNG figures of a Markdown file go: beside it, named ``<stem>-<figure>.png``."""
    target = Path(path)
    return {name: target.with_name(f"{target.stem}-{name}.png") for name in names}


def render_markdown(
    result: SweepResult,
    figure_names: Mapping[str, str] | None = None,
    *,
    title: str | None = None,
    budget: int | str | None = None,
    tolerance: float = 0.05,
) -> str:
    """The report as Markdown; ``figure_names`` maps figure kinds to the image files it links."""
    context = _template_context(result, budget, tolerance)
    rec = context["recommendation"]
    parts = [
        f"# {markdown_text(title or f'mlxtune report: {result.label}')}",
        f"{markdown_text(result.label)} · {markdown_text(result.workload or 'workload not described')} · "
        f"{markdown_text(context['status'])}",
        "## Recommendation",
        f"**{markdown_text(context['headline'])}**",
        markdown_text(rec.reason),
        code_block(context["python_code"], "python"),
        code_block(context["swift_code"], "swift"),
        "## Summary",
        markdown_table(context["summary"]),
    ]
    if figure_names:
        parts.append("## Figures")
        parts += [markdown_image(f"{kind} figure", name) for kind, name in figure_names.items()]
    environment = Table(["setting", "value"], [Row([k, v]) for k, v in environment_rows(result)], 2)
    parts += ["## Environment", markdown_table(environment)]
    runs = runs_table(result)
    parts += ["## Runs", f"<details><summary>Raw runs ({len(runs.rows)})</summary>", "",
              markdown_table(runs), "", "</details>"]
    return "\n\n".join(parts) + "\n"


def write_markdown(
    result: SweepResult,
    path: str | os.PathLike[str],
    *,
    figures: Sequence[str] = FIGURE_KINDS,
    title: str | None = None,
    budget: int | str | None = None,
    tolerance: float = 0.05,
) -> str:
    """Write the Markdown report and its figures as PNG files beside it; returns the Markdown path.

    Everything is rendered before anything is written, and the files change together
    (:func:`mlxtune.files.write_together`): an error leaves every old file as it was.
    """
    rendered = _figures(result, figures, budget, tolerance)
    files = figure_files(path, [kind for kind, _ in rendered])
    images = {kind: figure_bytes(fig, "png") for kind, fig in rendered}
    text = render_markdown(result, {kind: files[kind].name for kind in images}, title=title, budget=budget,
                           tolerance=tolerance)
    return write_together({**{files[kind]: data for kind, data in images.items()}, path: text})[-1]
