"""Figures of sweep results, drawn with matplotlib's object API.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot, so nothing is
registered globally and nothing is left open; new figures show themselves in Jupyter as PNG (see
:class:`NotebookFigure`), with or without ``%matplotlib inline``. Artists carry gids so code
(tests, the widget) can find them: ``"points"`` (one measured line per series),
``"limit-label"`` (a point's cache limit), ``"pareto"``, ``"recommended"``, ``"budget"``,
``"highlight"`` and ``"memory:<summary column>"`` (one line per series of the memory figure).

A cache-limit axis spans 0 to "unlimited" (2**63 - 1), which no log scale shows well: limits are
placed at log10 of their size, with 0 one decade left of the smallest positive limit and
"unlimited" one decade right of the largest finite one, each labelled with its readable size.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import math
import textwrap
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import FixedLocator, FuncFormatter, Locator, LogLocator, MaxNLocator, NullFormatter

from mlxtune.decision import TOLERANCE
from mlxtune.present import recommended_rows, throughput_unit
from mlxtune.stats import run_footprints
from mlxtune.units import BINARY_UNITS, UNLIMITED, format_size, parse_size
from mlxtune.view import PROCESS_MEMORY, limit_text, param_text

if TYPE_CHECKING:
    from mlxtune.advice import Recommendation
    from mlxtune.fleet_result import FleetResult
    from mlxtune.result import SweepResult

__all__ = [
    "KINDS",
    "NotebookFigure",
    "cell_timeline",
    "check_format",
    "comparison",
    "data_uri",
    "figure_bytes",
    "fleet_plot",
    "memory",
    "pareto_front",
    "plot",
    "plot_labels",
    "run_order",
    "throughput",
    "timeline",
    "tradeoff",
]

KINDS = ("tradeoff", "throughput", "memory", "timeline", "order")
_SPREAD_WORDS = {"iqr": "quartiles of the runs", "ci": "95% interval of the median"}
#: Error bars: "iqr" (quartiles of the runs) or "ci" (95% interval of the median); summary columns.
SPREADS = {"iqr": ("throughput_q1", "throughput_q3"), "ci": ("throughput_ci_low", "throughput_ci_high")}
_FIGSIZE = (7.0, 4.5)
_MEMORY_SERIES = (
    ("footprint", "footprint (peak + cache)"),
    ("peak_memory_max", "peak active"),
    ("cache_after_max", "cache held"),
    ("process_rss_max", "process RSS"),
)


def _set_title(ax: Axes, text: str) -> None:
    """A title wrapped to the figure's width, so long labels are not cut off at the edge."""
    width = max(30, int(ax.figure.get_figwidth() * 10))
    ax.set_title(textwrap.fill(text, width), fontsize="medium")


def figure_bytes(figure: Figure, fmt: str = "svg", dpi: int = 110, *, text: bool = False) -> bytes:
    """A figure as SVG or PNG bytes, reproducible (no date, fixed ids). ``text``: an SVG's words stay
    text (the panel's page can read its axis labels; the viewer's fonts draw them) instead of the
    glyph outlines a shared report carries, which look the same everywhere."""
    from matplotlib import rc_context

    buffer = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    with rc_context({"svg.hashsalt": "mlxtune", "svg.fonttype": "none" if text else "path"}):
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


def plot(result: SweepResult, kind: str = "tradeoff", **options: Any) -> Figure:
    """``kind`` is one of :data:`KINDS`; ``options`` go to that function."""
    drawers = {"tradeoff": tradeoff, "throughput": throughput, "memory": memory, "timeline": timeline,
               "order": run_order}
    if kind not in drawers:
        raise ValueError(f"unknown plot kind {kind!r}: expected one of {', '.join(KINDS)}")
    return drawers[kind](result, **options)


# -- the trade-off chart ------------------------------------------------------------------------


def tradeoff(
    result: SweepResult,
    *,
    ax: Axes | None = None,
    highlight: int | str | None = None,
    budget: int | str | None = None,
    tolerance: float = TOLERANCE,
    spread: str = "iqr",
    recommendation: bool = True,
    title: str | None = None,
) -> Figure:
    """Memory (x) against median throughput (y): one point per grid point, labelled with its limit.

    x is the peak footprint above what the run started with (``footprint_above_start``): a large
    model's weights are the same at every limit, and on a scale that includes them the points
    would differ by noise alone. Error bars show ``spread`` ("iqr": quartiles of the runs, or "ci":
    the 95% interval of the median), as the figure says. The Pareto front (no other point is both
    smaller and faster) is drawn, the recommended point is starred once decided, and ``budget``
    (bytes or a size, against the whole footprint) is drawn where it falls on this scale.
    """
    summary = result.summary_frame()
    held = float((summary["footprint"] - summary["footprint_above_start"]).median()) if len(summary) else 0.0
    summary["footprint"] = summary["footprint_above_start"]  # what a limit changes, on the x axis below
    ax = _axes(ax)
    for index, (name, points) in enumerate(_series(summary, result.params)):
        _errorbar(ax, points["footprint"], points, spread, _color(index), name)
    measured = summary[summary["throughput_median"].notna()]
    front = pareto_front(measured)
    if len(front) > 1:
        ax.plot(front["footprint"], front["throughput_median"], linestyle="--", color="0.5", linewidth=1,
                zorder=1, label="Pareto front", gid="pareto")
    budget_bytes = None if budget is None else parse_size(budget)
    if budget_bytes is not None:
        ax.axvline(budget_bytes - held, color="tab:red", linestyle=":",
                   label=f"budget {format_size(budget_bytes)}", gid="budget")
    if recommendation and len(measured):
        _mark_recommended(ax, measured, result.recommend(budget=budget, tolerance=tolerance))
    if highlight is not None:
        _highlight(ax, measured, highlight, lambda rows: rows["footprint"])
    _size_axis(ax.xaxis, measured["footprint"] if len(measured) else summary["footprint"], log_if_wide=True)
    _label_limits(ax, measured)
    ax.set_xlabel(f"peak footprint above the run's start (MLX active + cache; {format_size(held)} held "
                  "before)")
    ax.text(0.99, 0.01, f"error bars: {_SPREAD_WORDS[spread]}", transform=ax.transAxes, ha="right",
            va="bottom", fontsize=7, color="0.35", gid="spread-note")
    ax.set_ylabel(f"throughput ({throughput_unit(result, summary)}/s)")
    _set_title(ax, title if title is not None else f"{result.label}: speed against memory")
    _finish(ax)
    return ax.figure


def pareto_front(summary: pd.DataFrame) -> pd.DataFrame:
    """The points no other point beats on both footprint (smaller) and throughput (larger).

    Sorted by footprint; rows with no measured throughput are left out.
    """
    ranked = summary[summary["throughput_median"].notna()].sort_values(
        ["footprint", "throughput_median"], ascending=[True, False], kind="stable"
    )
    keep, fastest = [], -math.inf
    for index, value in ranked["throughput_median"].items():
        if value > fastest:
            keep.append(index)
            fastest = value
    return ranked.loc[keep]


# -- against the cache limit --------------------------------------------------------------------


def throughput(
    result: SweepResult,
    *,
    ax: Axes | None = None,
    highlight: int | str | None = None,
    spread: str = "iqr",
    title: str | None = None,
) -> Figure:
    """Median throughput against cache limit, with ``spread`` as error bars; one line per series."""
    summary = result.summary_frame()
    ax = _axes(ax)
    positions = _LimitAxis(summary["cache_limit"])
    for index, (name, points) in enumerate(_series(summary, result.params)):
        _errorbar(ax, positions.of(points["cache_limit"]), points, spread, _color(index), name, line=True)
    if highlight is not None:
        measured = summary[summary["throughput_median"].notna()]
        _highlight(ax, measured, highlight, lambda rows: positions.of(rows["cache_limit"]))
    positions.apply(ax)
    ax.set_ylabel(f"throughput ({throughput_unit(result, summary)}/s)")
    ax.set_ylim(bottom=0)
    _set_title(ax, title if title is not None else f"{result.label}: throughput against cache limit")
    _finish(ax)
    return ax.figure


def memory(
    result: SweepResult,
    *,
    ax: Axes | None = None,
    highlight: int | str | None = None,
    title: str | None = None,
) -> Figure:
    """Footprint, peak active, cache held and process RSS against cache limit.

    Each point is the largest value over the point's runs; a bar down to the smallest shows the
    spread between runs. When the process holds far more than MLX's allocator (a small model in a
    big process), process RSS gets its own axis on the right so MLX's numbers stay readable.
    """
    params = list(result.params)
    measured = (pd.concat([result.runs, result.blocks], ignore_index=True) if len(result.blocks)
                else result.runs)  # a paired sweep's memory: whole runs and blocks
    runs = measured.assign(footprint=run_footprints(measured))
    raw_columns = [column.removesuffix("_max") for column, _ in _MEMORY_SERIES]
    lowest = runs.groupby(params, sort=False, dropna=False)[raw_columns].min()
    summary = result.summary_frame().merge(lowest.add_suffix("_min").reset_index(), on=params, how="left")
    ax = _axes(ax)
    positions = _LimitAxis(summary["cache_limit"])
    series = _series(summary, params)
    apart = summary["process_rss_max"].max() > _OWN_AXIS * max(summary["footprint"].max(), 1)
    rss_ax = ax.twinx() if apart else ax
    for index, (column, label) in enumerate(_MEMORY_SERIES):
        target = rss_ax if column == "process_rss_max" else ax
        if target is not ax:
            label += " (right axis)"
        for series_index, (name, points) in enumerate(series):
            high = points[column].to_numpy(dtype=float)
            low = points[f"{column.removesuffix('_max')}_min"].to_numpy(dtype=float)
            below = np.clip(np.nan_to_num(high - low), 0, None)
            container = target.errorbar(
                positions.of(points["cache_limit"]), high, yerr=[below, np.zeros_like(high)],
                marker="os^v"[index], color=_color(index), capsize=3, linestyle=_LINESTYLES[series_index % 4],
                label=f"{label} ({name})" if len(series) > 1 else label,
            )
            container.lines[0].set_gid(f"memory:{column}")
    if highlight is not None:
        ax.axvline(positions.of([parse_size(highlight)])[0], **_HIGHLIGHT_LINE)
    positions.apply(ax)
    for axes in {ax, rss_ax}:
        _size_axis(axes.yaxis, summary["footprint"], log_if_wide=False)
        top = axes.dataLim.ymax
        axes.set_ylim(0, top * 1.08 if np.isfinite(top) and top > 0 else 1)
    ax.set_ylabel("MLX memory" if rss_ax is not ax else "memory")
    if rss_ax is not ax:
        rss_ax.set_ylabel("process RSS")
    _set_title(ax, title if title is not None else f"{result.label}: memory against cache limit")
    _finish(ax, rss_ax)
    return ax.figure


# -- memory over time ---------------------------------------------------------------------------


def timeline(result: SweepResult, *, title: str | None = None) -> Figure:
    """Memory over time during one run of each cache limit: the cache held (top), and MLX's active +
    cache with the process's memory (bottom), each limit drawn as a dashed line in its colour.

    The run shown for a limit is the one with the median throughput among its successful runs, so
    what is drawn is typical. On a small limit the cache fills and stops at the line; unlimited
    keeps growing. The cache axis spans what was held, so a few KB held under a 16MB limit still
    shows; a limit above it is not drawn. Runs of every other grid axis are pooled (the first axis
    value's runs are shown).
    """
    figure = NotebookFigure(figsize=(_FIGSIZE[0], _FIGSIZE[1] * 1.3), layout="constrained")
    cache_ax, total_ax = figure.subplots(2, 1, sharex=True)
    typical = _typical_runs(result)
    shown = result.timelines[result.timelines["run"].isin(list(typical.values()))]
    # the cache axis spans what the shown runs held (a limit far above it would flatten every line)
    top = max(float(shown["cache"].max()) if len(shown) else 0.0, 1024.0) * 1.15
    for index, (limit, run) in enumerate(typical.items()):
        samples = shown[shown["run"] == run]
        color, name = _color(index), limit_text(limit)
        cache_ax.plot(samples["seconds"], samples["cache"], color=color, label=name, gid=f"timeline:{limit}")
        total_ax.plot(samples["seconds"], samples["active"] + samples["cache"], color=color, label=name)
        if 0 < limit < UNLIMITED and limit <= top:
            cache_ax.axhline(limit, color=color, linestyle="--", linewidth=1, gid=f"limit:{limit}")
    for axes, label, values in ((cache_ax, "cache held", shown["cache"]),
                                (total_ax, "active + cache", shown["active"] + shown["cache"])):
        _size_axis(axes.yaxis, values, log_if_wide=False)
        axes.set_ylabel(label)
        axes.set_ylim(bottom=0)
    cache_ax.set_ylim(top=top)
    total_ax.set_xlabel("seconds into the run (the run with the median throughput at each limit)")
    _set_title(cache_ax, title if title is not None else f"{result.label}: memory during a run")
    if typical:
        cache_ax.legend(title="cache limit (dashed: the limit)", fontsize=7, title_fontsize=7, loc="best")
    _finish(total_ax)
    return figure


def _typical_runs(result: SweepResult) -> dict[int, int]:
    """For each cache limit with samples, the row of its run with the median throughput."""
    runs = result.runs.reset_index(drop=True)
    sampled = runs.index.isin(result.timelines["run"].unique())
    ok = runs[sampled & (runs["error"] == "")]
    if len(result.params) > 1:
        first = ok[result.params[1:]].iloc[0] if len(ok) else None
        if first is not None:
            ok = ok[(ok[result.params[1:]] == first).all(axis=1)]
    chosen = {}
    for limit, group in ok.groupby("cache_limit"):
        order = group["throughput"].sort_values(kind="stable")
        chosen[int(limit)] = int(order.index[(len(order) - 1) // 2])
    return chosen


def run_order(result: SweepResult, *, title: str | None = None) -> Figure:
    """Throughput of every successful run in the order the runs ran, coloured by cache limit.

    Drift (a machine warming up, or slowing as it heats) shows as a slope shared by every limit,
    and a busy spell as a step: interleaving keeps either from favouring a limit, and this figure
    shows whether they happened.
    """
    rows = result.speed_rows
    runs = rows.assign(order=rows["started_at"].rank(method="first"))
    ok = runs[runs["error"] == ""]
    ax = _axes(None)
    for index, (limit, group) in enumerate(ok.groupby("cache_limit")):
        ax.plot(group["order"], group["throughput"], "o", color=_color(index), markersize=4,
                label=limit_text(limit), gid=f"order:{limit}")
    ax.set_xlabel("block, in the order run (paired within runs)" if result.design == "paired"
                  else "run, in the order run")
    ax.set_ylabel(f"throughput ({throughput_unit(result, result.summary_frame())}/s)")
    _set_title(ax, title if title is not None else f"{result.label}: every run in order")
    if len(ok):
        ax.legend(title="cache limit", fontsize=7, title_fontsize=7, loc="best", ncols=2)
    _finish(ax)
    return ax.figure


def cell_timeline(cell: Any) -> Figure:
    """Memory over time during a ``%%mlxmem`` cell's runs, one after another: MLX's active and cache
    memory, and the process's, with the cache and memory limits in force as dashed lines."""
    samples = cell.samples()
    ax = _axes(None)
    offset, pieces = 0.0, []
    for _, part in samples.groupby("run", sort=True):
        pieces.append(part.assign(seconds=part["seconds"] + offset))
        offset += float(part["seconds"].max()) if len(part) else 0.0
    frame = pd.concat(pieces) if pieces else samples
    for column, label, color in (("active", "MLX active", "tab:blue"), ("cache", "MLX cache", "tab:orange"),
                                 ("process", f"process ({PROCESS_MEMORY})", "tab:gray")):
        ax.plot(frame["seconds"], frame[column], label=label, color=color, gid=f"cell:{column}")
    record = cell.records[-1]
    top = float(frame[["active", "cache", "process"]].to_numpy().max()) if len(frame) else 1.0
    for limit, label in ((record.cache_limit, "cache limit"), (record.memory_limit, "memory limit")):
        if 0 < limit < UNLIMITED and limit <= 1.5 * top:
            ax.axhline(limit, linestyle="--", color="tab:red", linewidth=1,
                       label=f"{label} {limit_text(limit)}")
    _size_axis(ax.yaxis, frame["process"] if len(frame) else pd.Series([1]), log_if_wide=False)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("seconds (measured runs one after another)")
    ax.set_ylabel("memory")
    _set_title(ax, f"%%mlxmem {cell.label or 'cell'}: memory during the cell")
    _finish(ax)
    return ax.figure


# -- several results ----------------------------------------------------------------------------


def comparison(
    results: Sequence[SweepResult],
    *,
    kind: str = "tradeoff",
    ax: Axes | None = None,
    spread: str = "iqr",
    title: str | None = None,
) -> Figure:
    """Results on one chart ("tradeoff" or "throughput"), told apart by the legend; one result is allowed."""
    if kind not in ("tradeoff", "throughput"):
        raise ValueError(f"unknown comparison kind {kind!r}: expected tradeoff or throughput")
    if not results:
        raise ValueError("comparison() needs at least one result")
    ax = _axes(ax)
    labels = plot_labels(results)
    summaries = [r.summary_frame() for r in results]
    positions = _LimitAxis(pd.concat([s["cache_limit"] for s in summaries]))
    index = 0
    for label, result, summary in zip(labels, results, summaries, strict=True):
        for name, points in _series(summary, result.params):
            series_label = f"{label} · {name}" if name else label
            x = points["footprint"] if kind == "tradeoff" else positions.of(points["cache_limit"])
            _errorbar(ax, x, points, spread, _color(index), series_label, line=kind == "throughput")
            index += 1
    units = {throughput_unit(r, s) for r, s in zip(results, summaries, strict=True)}
    ax.set_ylabel(f"throughput ({' / '.join(sorted(units))}/s)")
    if kind == "tradeoff":
        _size_axis(ax.xaxis, pd.concat([s["footprint"] for s in summaries]), log_if_wide=True)
        _label_limits(ax, pd.concat(summaries))
        ax.set_xlabel("footprint: peak active + cache held")
    else:
        positions.apply(ax)
        ax.set_ylim(bottom=0)
    _set_title(ax, title if title is not None else " vs ".join(labels))
    _finish(ax)
    return ax.figure


# -- helpers ------------------------------------------------------------------------------------

_HIGHLIGHT_STYLE: dict[str, Any] = {
    "marker": "o", "markersize": 16, "markerfacecolor": "none", "markeredgecolor": "black",
    "markeredgewidth": 2, "linestyle": "none", "zorder": 5, "gid": "highlight",
}
_HIGHLIGHT_LINE: dict[str, Any] = {"color": "black", "linewidth": 1.5, "alpha": 0.6, "gid": "highlight"}
def fleet_plot(fleet: FleetResult, kind: str = "tradeoff", **options: Any) -> Figure:
    """:meth:`FleetResult.plot`: one curve per host, named by its host."""
    named = [dataclasses.replace(r, label=host) for host, r in fleet.results.items()]
    if not named:
        raise ValueError("no host gave a result, so there is nothing to plot")
    return comparison(named, kind=kind, title=options.pop("title", f"{fleet.label}: one curve per host"),
                      **options)


_LINESTYLES = ("-", "--", ":", "-.")
#: Process RSS moves to its own axis when it exceeds MLX's footprint by this factor.
_OWN_AXIS = 5


class NotebookFigure(Figure):
    """A Figure that IPython displays as PNG by itself.

    IPython shows a plain Figure as an image only once pyplot's inline backend has registered a
    formatter for it; a figure made without pyplot would otherwise show as ``<Figure size ...>``.
    Where such a formatter is registered, it takes precedence and the figure shows once.
    """

    def _repr_png_(self) -> bytes:
        return figure_bytes(self, "png", dpi=100)


def _axes(ax: Axes | None) -> Axes:
    """The given axes, or those of a new figure that pyplot does not know about."""
    if ax is not None:
        return ax
    figure = NotebookFigure(figsize=_FIGSIZE, layout="constrained")
    return figure.add_subplot()


def _color(index: int) -> str:
    from matplotlib import rcParams

    colors = rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    return colors[index % len(colors)]


def _series(summary: pd.DataFrame, params: Sequence[str]) -> list[tuple[str, pd.DataFrame]]:
    """The summary split by every axis except the cache limit; names like "dtype=q4" ("" if none)."""
    others = [p for p in params if p != "cache_limit"]
    if not others:
        return [("", summary)]
    groups = summary.groupby(others, sort=False, dropna=False)
    named = []
    for key, points in groups:
        values = key if isinstance(key, tuple) else (key,)
        name = ", ".join(f"{p}={param_text(p, v)}" for p, v in zip(others, values, strict=True))
        named.append((name, points))
    return named


def _spread(points: pd.DataFrame, spread: str) -> tuple[np.ndarray, np.ndarray]:
    if spread not in SPREADS:
        raise ValueError(f"unknown spread {spread!r}: expected iqr or ci")
    low, high = SPREADS[spread]
    median = points["throughput_median"].to_numpy(dtype=float)
    below = np.clip(np.nan_to_num(median - points[low].to_numpy(dtype=float)), 0, None)
    above = np.clip(np.nan_to_num(points[high].to_numpy(dtype=float) - median), 0, None)
    return below, above


def _errorbar(ax: Axes, x: Any, points: pd.DataFrame, spread: str, color: str, label: str,
              line: bool = False) -> None:
    """Median throughput with its spread; the data line gets gid "points" (NaN medians skipped)."""
    measured = points["throughput_median"].notna().to_numpy()
    x = np.asarray(x, dtype=float)[measured]
    points = points[measured]
    below, above = _spread(points, spread)
    container = ax.errorbar(x, points["throughput_median"].to_numpy(dtype=float), yerr=[below, above],
                            fmt="o-" if line else "o", color=color, capsize=3, label=label or "measured",
                            zorder=3)
    container.lines[0].set_gid("points")


def _label_limits(ax: Axes, points: pd.DataFrame) -> None:
    """Label each point with its cache limit; points drawn within a few pixels share one label.

    On a CPU, footprints often coincide for every limit above the working set; one label
    "16MB, 1GB, unlimited" reads, six labels on top of each other do not.
    """
    points = points[points["throughput_median"].notna()].sort_values("cache_limit", kind="stable")
    if points.empty:
        return
    ax.autoscale_view()
    data = np.column_stack([points["footprint"].to_numpy(float), points["throughput_median"].to_numpy(float)])
    pixels = ax.transData.transform(data)
    groups: list[tuple[np.ndarray, np.ndarray, list[int]]] = []
    for pixel, point, limit in zip(pixels, data, points["cache_limit"], strict=True):
        near = next((g for g in groups if abs(g[0][0] - pixel[0]) < 14 and abs(g[0][1] - pixel[1]) < 9), None)
        if near is None:
            groups.append((pixel, point, [int(limit)]))
        elif int(limit) not in near[2]:
            near[2].append(int(limit))
    texts = [", ".join(limit_text(v) for v in limits) for _, _, limits in groups]
    placed: list[tuple[float, float]] = []  # label anchors in points, so no label lands on another
    lifts = [5.0] * len(groups)
    to_points = 72.0 / ax.figure.dpi
    for i in sorted(range(len(groups)), key=lambda i: (groups[i][0][0], -groups[i][0][1])):  # left to right
        at = (groups[i][0][0] * to_points, groups[i][0][1] * to_points)
        lifts[i] = _free_lift(placed, *at, width=5.0 * len(texts[i]))
        placed.append((at[0], at[1] + lifts[i]))
    for (_, (x, y), _), text, lift in zip(groups, texts, lifts, strict=True):
        ax.annotate(text, (x, y), xytext=(4, lift), textcoords="offset points", fontsize=8, color="0.25",
                    gid="limit-label")


def _free_lift(placed: list[tuple[float, float]], x: float, y: float, width: float) -> float:
    """How far (points) above, or line by line below, a point its label goes to cover no placed label."""
    lift = 5.0
    while any(abs(px - x) < width and abs(py - (y + lift)) < 9 for px, py in placed):
        lift -= 9.0
    return lift


def _mark_recommended(ax: Axes, measured: pd.DataFrame, rec: Recommendation) -> None:
    """A star on the recommended point once decided; before that, an open diamond on the safe pick."""
    rows = measured[recommended_rows(measured, rec)]
    if rows.empty:
        return
    limit = limit_text(rec.cache_limit)
    style = (dict(marker="*", markersize=18, color="gold", label=f"recommended: {limit}") if rec.decided else
             dict(marker="D", markersize=11, color="none", label=f"safe so far: {limit} (smaller undecided)"))
    ax.plot(rows["footprint"].iloc[:1], rows["throughput_median"].iloc[:1], markeredgecolor="black",
            linestyle="none", zorder=6, gid="recommended" if rec.decided else "safe", **style)


def _highlight(ax: Axes, measured: pd.DataFrame, limit: int | str, x: Callable[[pd.DataFrame], Any]) -> None:
    """A ring around the measured point(s) at cache limit ``limit``, placed at ``x(rows)``."""
    rows = measured[measured["cache_limit"] == parse_size(limit)]
    if len(rows):
        ax.plot(x(rows), rows["throughput_median"], **_HIGHLIGHT_STYLE)


#: The units a size axis is labelled in: bytes, then the binary units (:func:`_size_axis`).
_UNITS = (("B", 1), *BINARY_UNITS)


def _size_axis(axis: Any, values: pd.Series, log_if_wide: bool) -> None:
    """Sizes on an axis of bytes in one binary unit, at round numbers of it, so the labels are distinct
    and in order ("1MiB 1.5MiB 2MiB", never "1.05MB 1MiB 1.01MiB"); log-scaled, at powers of two, when
    the values span more than 20x ("16KiB 32KiB ... 1024KiB")."""
    finite = pd.to_numeric(values, errors="coerce").dropna()
    positive = finite[finite > 0]
    logarithmic = bool(log_if_wide and len(positive) and positive.max() / positive.min() > 20)
    # linear: the unit of the largest value; logarithmic: one the smallest value is at least 1/16 of,
    # so no power-of-two tick reads "0.01562MiB"
    reach = (positive.min() * 16 if logarithmic else positive.max()) if len(positive) else 0
    unit, scale = next(((name, size) for name, size in reversed(_UNITS) if reach >= size), _UNITS[0])
    if logarithmic:
        axis.axes.set_xscale("log") if axis.axis_name == "x" else axis.axes.set_yscale("log")
        axis.set_major_locator(LogLocator(base=2, subs=(1.0,), numticks=8))
        axis.set_minor_formatter(NullFormatter())
    else:
        axis.set_major_locator(_UnitLocator(scale))
    axis.set_major_formatter(FuncFormatter(lambda value, _pos: "" if value < 0 else (
        f"{value / scale:.4g}{unit}" if value / scale < 10_000 else f"{value / scale:,.0f}{unit}")))


class _UnitLocator(Locator):
    """Round ticks in a unit of ``scale`` bytes: matplotlib's own choice of round numbers, in that unit."""

    def __init__(self, scale: int) -> None:
        self.scale, self.inner = scale, MaxNLocator(nbins="auto", steps=[1, 2, 2.5, 5, 10])

    def __call__(self) -> Sequence[float]:
        low, high = self.axis.get_view_interval()
        return self.tick_values(low, high)

    def tick_values(self, vmin: float, vmax: float) -> Sequence[float]:
        return self.inner.tick_values(vmin / self.scale, vmax / self.scale) * self.scale


class _LimitAxis:
    """Where each cache limit sits on a linear x axis in log10 units (see the module docstring)."""

    def __init__(self, limits: pd.Series | Sequence[int]) -> None:
        self.limits = sorted({int(v) for v in pd.Series(limits).dropna()})
        finite = [math.log10(v) for v in self.limits if 0 < v < UNLIMITED]
        self.low = (min(finite) if finite else 0.0) - 1.0
        self.high = (max(finite) if finite else 0.0) + 1.0

    def position(self, limit: int) -> float:
        if limit <= 0:
            return self.low
        if limit >= UNLIMITED:
            return self.high
        return math.log10(limit)

    def of(self, limits: Sequence[int] | pd.Series) -> np.ndarray:
        return np.array([self.position(int(v)) for v in limits], dtype=float)

    def apply(self, ax: Axes) -> None:
        ticks = [self.position(v) for v in self.limits]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.set_xticklabels([limit_text(v) for v in self.limits], rotation=30, ha="right")
        ax.set_xlim(self.low - 0.4, self.high + 0.4)
        ax.set_xlabel("cache limit (log scale; 0 and unlimited at the ends)")


def plot_labels(results: Sequence[SweepResult]) -> list[str]:
    """Each result's label, numbered where two results share one."""
    labels = [r.label for r in results]
    return [f"{label} #{labels[:i].count(label) + 1}" if labels.count(label) > 1 else label
            for i, label in enumerate(labels)]


def _finish(ax: Axes, *others: Axes) -> None:
    """The last step of every figure: one legend on ``ax`` for its artists and those of ``others``
    (twin axes), and every text shown as typed.

    Labels, units and grid values are the user's text; matplotlib would read ``$...$`` in them as
    math (and fail on ``$$`` or ``$\\frac$``), so math parsing is off for every text of the figure.
    """
    handles, labels = ax.get_legend_handles_labels()
    for other in others:
        if other is not ax:
            more = other.get_legend_handles_labels()
            handles, labels = handles + more[0], labels + more[1]
    if handles:
        ax.legend(handles, labels, fontsize=8, loc="best")
    for text in ax.figure.findobj(Text):
        text.set_parse_math(False)
