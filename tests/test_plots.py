"""Figures are checked for what they show: points, labels, the front, the recommended marker."""

from __future__ import annotations

import dataclasses
import html
import math
import re

import numpy as np
import pytest
from matplotlib import _pylab_helpers
from matplotlib.figure import Figure
from matplotlib.text import Text
from sweep_data import LIMITS, MB, SPEEDS, make_result, row

from mlxtune import plots
from mlxtune.record import runs_frame
from mlxtune.result import SweepResult
from mlxtune.units import UNLIMITED
from mlxtune.view import limit_text


def artists(figure: Figure, gid: str) -> list:
    return [a for a in figure.findobj() if a.get_gid() == gid]


def points(figure: Figure) -> np.ndarray:
    """Every measured point (x, y) drawn, across series."""
    lines = artists(figure, "points")
    return np.concatenate([np.column_stack([line.get_xdata(), line.get_ydata()]) for line in lines])


def legend_texts(figure: Figure) -> list[str]:
    return [t.get_text() for t in figure.axes[0].get_legend().get_texts()]


def test_tradeoff_shows_one_labelled_point_per_limit_the_front_and_the_recommendation():
    result = make_result()
    summary = result.summary_frame()
    rec = result.recommend(budget="100MB")
    figure = result.plot(kind="tradeoff", budget="100MB")

    drawn = points(figure)
    assert len(drawn) == len(LIMITS)
    np.testing.assert_allclose(sorted(drawn[:, 1]), sorted(summary["throughput_median"]))
    labels = [name for t in artists(figure, "limit-label") for name in t.get_text().split(", ")]
    assert labels == [limit_text(limit) for limit in LIMITS]

    # x is what a limit changes: the peak above what each run started with (1000 bytes here)
    held = 1000
    (star,) = artists(figure, "recommended")
    assert rec.cache_limit == 16 * MB and rec.decided  # the budget rules out the larger limits
    assert (star.get_xdata()[0], star.get_ydata()[0]) == (rec.footprint - held, pytest.approx(rec.throughput))

    (front,) = artists(figure, "pareto")
    expected = plots.pareto_front(summary.assign(footprint=summary["footprint_above_start"]))
    np.testing.assert_allclose(front.get_xdata(), expected["footprint"])
    (budget,) = artists(figure, "budget")
    assert budget.get_xdata()[0] == 100 * MB - held
    assert {"Pareto front", "budget 100MB", "recommended: 16MB"} <= set(legend_texts(figure))
    assert figure.axes[0].get_xlabel().startswith("peak footprint above the run's start")
    (note,) = artists(figure, "spread-note")
    assert note.get_text() == "error bars: quartiles of the runs"


@pytest.mark.parametrize(("spread", "log"), [(1.03, False), (400, True)])
def test_size_axis_labels_are_distinct_ordered_and_in_one_unit(spread: float, log: bool) -> None:
    """Footprints close together (1MB to 1.03MB) once read "1.05MB 1MiB 1.01MiB 1.01MiB": ticks at
    round numbers of one binary unit now, powers of two when the axis is logarithmic."""
    limits = (0, MB, 16 * MB, UNLIMITED)
    cache = dict(zip(limits, np.geomspace(MB, MB * spread, len(limits)).astype(int), strict=True))
    rows = [row(limit, repeat, 100.0 + i, cache=cache[limit], peak=0)
            for i, limit in enumerate(limits) for repeat in range(4)]
    figure = SweepResult(runs=runs_frame(rows), params=["cache_limit"], unit="tokens").plot("tradeoff")
    figure.canvas.draw()
    ax = figure.axes[0]
    low, high = ax.get_xlim()
    texts = [label.get_text() for tick, label in zip(ax.get_xticks(), ax.get_xticklabels(), strict=True)
             if label.get_text() and low <= tick <= high]
    assert len(texts) >= 2 and len(set(texts)) == len(texts), texts
    units = {re.sub(r"^[\d.]+", "", text) for text in texts}
    assert len(units) == 1 and units <= {"KiB", "MiB"}, texts
    values = [float(re.match(r"[\d.]+", text).group()) for text in texts]
    assert values == sorted(values)
    assert (ax.get_xscale() == "log") == log


def test_points_on_the_same_spot_share_one_label():
    speeds = {0: 100.0, 1 * MB: 130.0, 16 * MB: 170.0, 256 * MB: 170.2, UNLIMITED: 170.1}
    figure = make_result(speeds, noise=0.0).plot("tradeoff")
    labels = [t.get_text() for t in artists(figure, "limit-label")]
    assert labels == ["0", "1MB", "16MB", "256MB, unlimited"]  # same footprint, same speed


def test_pareto_front_keeps_only_points_nothing_else_beats():
    result = make_result({0: 100.0, 1 * MB: 90.0, 16 * MB: 160.0}, noise=0.0)
    front = plots.pareto_front(result.summary_frame())
    # 1MB is bigger than 0 and slower: dominated.
    assert list(front["cache_limit"]) == [0, 16 * MB]


def test_highlight_marks_the_scrubbed_limit_in_each_kind():
    result = make_result()
    footprint = result.summary_frame().set_index("cache_limit").loc[16 * MB, "footprint_above_start"]
    (ring,) = artists(result.plot("tradeoff", highlight="16MB"), "highlight")
    assert ring.get_xdata()[0] == footprint
    assert len(artists(result.plot("throughput", highlight=16 * MB), "highlight")) == 1
    assert len(artists(result.plot("memory", highlight="16MB"), "highlight")) == 1
    assert artists(result.plot("tradeoff"), "highlight") == []


def test_failed_points_are_left_out_and_a_lone_failure_does_not_break_the_chart():
    rows = [row(limit, r, SPEEDS[limit], error="RuntimeError: boom" if limit == 0 else "")
            for limit in LIMITS for r in range(3)]
    result = SweepResult(runs=runs_frame(rows), params=["cache_limit"], label="half failed")
    figure = result.plot("tradeoff")
    assert len(points(figure)) == len(LIMITS) - 1
    assert "0" not in [t.get_text() for t in artists(figure, "limit-label")]


def test_a_second_axis_becomes_series_told_apart_by_the_legend():
    result = make_result(extra={"dtype": ["fp16", "q4"]}, scale={"q4": 0.6})
    figure = result.plot("tradeoff")
    assert len(artists(figure, "points")) == 2
    assert len(points(figure)) == 2 * len(LIMITS)
    assert {"dtype=fp16", "dtype=q4"} <= set(legend_texts(figure))
    (star,) = artists(figure, "recommended")
    assert star.get_ydata()[0] > 150  # on the fast fp16 series, not the slow q4 one


def test_throughput_against_limit_places_zero_and_unlimited_at_the_ends_with_iqr_bars():
    result = make_result()
    figure = result.plot("throughput")
    ax = figure.axes[0]
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks[0] == "0" and ticks[-1] == "unlimited"
    (line,) = artists(figure, "points")
    x = line.get_xdata()
    assert list(x) == sorted(x) and len(set(x)) == len(LIMITS)
    assert x[1] == pytest.approx(math.log10(1 * MB))
    summary = result.summary_frame()
    bars = ax.containers[0].lines[2][0].get_segments()
    for segment, (_, point) in zip(bars, summary.iterrows(), strict=True):
        low, high = sorted(segment[:, 1])
        assert low == pytest.approx(point["throughput_q1"]) and high == pytest.approx(point["throughput_q3"])
    ci = result.plot("throughput", spread="ci").axes[0].containers[0].lines[2][0].get_segments()
    assert sorted(ci[0][:, 1])[0] == pytest.approx(summary["throughput_ci_low"].iloc[0])
    with pytest.raises(ValueError, match="spread"):
        result.plot("throughput", spread="stdev")


def test_memory_figure_draws_each_memory_measure_at_its_largest():
    result = make_result()
    figure = result.plot("memory")
    summary = result.summary_frame()
    for column in ("footprint", "peak_memory_max", "cache_after_max", "process_rss_max"):
        (line,) = artists(figure, f"memory:{column}")
        np.testing.assert_array_equal(line.get_ydata(), summary[column].to_numpy(dtype=float))
    assert "footprint (peak + cache)" in legend_texts(figure)
    assert figure.axes[0].yaxis.get_major_formatter()(50 * 2**20, 0) == "50MiB"  # one binary unit


def test_process_rss_far_above_mlx_memory_gets_its_own_axis():
    rows = [row(limit, r, SPEEDS[limit], peak=1 * MB, cache=0) for limit in LIMITS for r in range(3)]
    result = SweepResult(runs=runs_frame(rows), params=["cache_limit"], label="small model, big process")
    figure = result.plot("memory")
    mlx_axis, rss_axis = figure.axes
    (rss,) = artists(figure, "memory:process_rss_max")
    assert rss.axes is rss_axis and artists(figure, "memory:footprint")[0].axes is mlx_axis
    assert rss_axis.get_ylim()[1] > 300 * MB > mlx_axis.get_ylim()[1]
    assert "process RSS (right axis)" in legend_texts(figure)
    assert len(make_result().plot("memory").axes) == 1  # comparable sizes share one axis


def test_comparison_puts_results_on_one_chart_with_a_legend():
    fast = make_result(label="fp16")
    slow = make_result({k: v * 0.7 for k, v in SPEEDS.items()}, label="q4", seed=1)
    figure = plots.comparison([fast, slow])
    assert legend_texts(figure) == ["fp16", "q4"]
    assert len(points(figure)) == 2 * len(LIMITS)
    twins = plots.comparison([fast, fast], kind="throughput")
    assert legend_texts(twins) == ["fp16 #1", "fp16 #2"]
    with pytest.raises(ValueError, match="tradeoff or throughput"):
        plots.comparison([fast], kind="memory")


def test_plot_draws_into_given_axes_and_rejects_unknown_kinds():
    figure = Figure()
    ax = figure.add_subplot()
    assert make_result().plot("throughput", ax=ax) is figure
    assert len(artists(figure, "points")) == 1
    with pytest.raises(ValueError, match="tradeoff, throughput, memory"):
        make_result().plot("pie")


def test_figures_show_in_ipython_without_pyplot():
    from IPython.core.formatters import DisplayFormatter

    figure = make_result().plot()
    data, _ = DisplayFormatter().format(figure)
    assert data["image/png"].startswith(b"\x89PNG")
    assert _pylab_helpers.Gcf.get_num_fig_managers() == 0


def test_no_figure_is_left_registered_with_pyplot():
    before = _pylab_helpers.Gcf.get_num_fig_managers()
    result = make_result()
    for kind in plots.KINDS:
        result.plot(kind)
    plots.comparison([result, result])
    assert _pylab_helpers.Gcf.get_num_fig_managers() == before == 0


MATHS = ["$$", r"$\frac$", "$x^2$ costs $5", r"a_b^{c} \alpha"]


@pytest.mark.parametrize("kind", ["tradeoff", "throughput", "memory", "comparison"])
def test_user_text_shows_as_typed_in_every_figure(kind: str) -> None:
    """Labels, units and grid values reach titles, axes and legends; matplotlib must not read them as math."""
    from matplotlib import rc_context

    label, unit, value = MATHS[0] + " run", MATHS[1], MATHS[2]
    made = make_result(label=label, extra={"dtype": [value, MATHS[3]]})
    result = dataclasses.replace(made, runs=made.runs.assign(unit=unit), unit=unit)
    other = make_result(label=MATHS[3])
    figure = plots.comparison([result, other]) if kind == "comparison" else result.plot(kind)
    with rc_context({"svg.fonttype": "none"}):  # text stays text in the SVG, as drawn
        svg = plots.figure_bytes(figure, "svg").decode()
    shown = " ".join(t.get_text() for t in figure.findobj(Text) if t.get_visible())
    expected = {"comparison": [label, MATHS[3]], "memory": [label, value]}.get(kind, [label, unit, value])
    for text in expected:
        assert text in shown
        assert html.escape(text, quote=False) in svg.replace("&#x27;", "'")


def test_a_small_cache_under_large_limits_is_drawn_at_its_own_scale() -> None:
    """A few hundred KB held under 16MB and 64MB limits used to read as a flat line at zero: the cache axis
    spans what was held, and a limit far above it is not drawn."""
    import mlx.core as mx

    from mlxtune import sweep

    def work() -> int:
        x = mx.ones((128, 128))
        for _ in range(4):
            x = x @ x / 128
        mx.eval(x)
        return 1

    result = sweep(work, cache_limits=["16MB", "64MB"], repeats=2, warmup=1, progress=False,
                   sample_interval=0.0005)
    figure = result.plot("timeline")
    cache_ax = figure.axes[0]
    held = max(max(line.get_ydata(), default=0) for line in cache_ax.get_lines()
               if str(line.get_gid()).startswith("timeline:"))
    assert 0 < held < 16 * MB
    assert held / cache_ax.get_ylim()[1] > 0.5  # the lines fill the axis, not its bottom pixel
    assert artists(figure, f"limit:{16 * MB}") == [] and artists(figure, f"limit:{64 * MB}") == []
