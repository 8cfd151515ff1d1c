"""SweepPanel driven as a user would, without a browser: sliders set, buttons clicked, real MLX runs."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mlx.core as mx
import psutil
import pytest
from bs4 import BeautifulSoup
from matplotlib.figure import Figure

from mlxtune import Blocks, memory
from mlxtune.units import UNLIMITED, parse_size
from mlxtune.widgets import LADDER, SweepPanel, spread

HOSTILE = "<script>alert('x')</script>\n\"quoted\" & <b>bold</b>"


def small_work() -> int:
    """A few MLX allocations: quick, and real work for the allocator."""
    a = mx.ones((128, 128))
    mx.eval(a @ a + 1)
    return 1


def slow_work() -> None:
    a = mx.ones((64, 64))
    mx.eval(a * 2)
    time.sleep(0.04)


@pytest.fixture
def make_panel(tmp_path: Path) -> Iterator[Callable[..., SweepPanel]]:
    """Panels writing into a temp folder, closed (and their sweeps stopped) after the test."""
    panels: list[SweepPanel] = []

    def make(workload: Callable[..., Any], **options: Any) -> SweepPanel:
        options.setdefault("out_dir", tmp_path / "out")
        options.setdefault("warmup", 0)
        panel = SweepPanel(workload, **options)
        panels.append(panel)
        return panel

    yield make
    for panel in panels:
        panel.close()


def run_and_wait(panel: SweepPanel, timeout: float = 60) -> None:
    panel.run_button.click()
    assert panel.wait(timeout), "the sweep did not finish in time"


def table_rows(panel: SweepPanel) -> list[list[str]]:
    soup = BeautifulSoup(panel.table.value, "html.parser")
    return [[td.get_text() for td in tr.find_all("td")] for tr in soup.find("tbody").find_all("tr")]


def plotted_points(figure: Figure) -> int:
    ax = figure.axes[0]
    return sum(len(line.get_xdata()) for line in ax.get_lines() if line.get_gid() == "points")


# -- choosing limits ------------------------------------------------------------------------------


def test_ladder_spans_zero_to_unlimited_with_readable_labels(make_panel: Callable[..., SweepPanel]) -> None:
    panel = make_panel(small_work)
    assert LADDER[0] == 0 and LADDER[-1] == UNLIMITED and parse_size("256KB") in LADDER
    assert list(LADDER) == sorted(LADDER)
    labels = [label for label, _ in panel.span.options]
    assert labels == ["0", "256KB", "1MB", "4MB", "16MB", "64MB", "256MB", "1GB", "4GB", "unlimited"]
    assert panel.cache_limits == list(LADDER)


def test_spread_keeps_both_ends_and_rejects_nonsense() -> None:
    assert spread([1, 2, 3, 4, 5], 3) == [1, 3, 5]
    assert spread([1, 2, 3], 9) == [1, 2, 3]
    assert spread([7, 8], 1) == [7]
    with pytest.raises(ValueError, match="points must be at least 1"):
        spread([1, 2], 0)


def test_moving_the_range_slider_changes_the_swept_range(make_panel: Callable[..., SweepPanel]) -> None:
    panel = make_panel(small_work, repeats=2)
    panel.span.index = (2, 6)
    assert panel.cache_limits == [parse_size(s) for s in ("1MB", "4MB", "16MB", "64MB", "256MB")]
    assert "1MB, 4MB, 16MB, 64MB, 256MB in 2 rounds: 10 runs" in panel.planned.value
    panel.points.value = 3
    assert panel.cache_limits == [parse_size(s) for s in ("1MB", "16MB", "256MB")]
    panel.span.index = (0, 1)  # fewer limits than points: all of them
    assert panel.cache_limits == [0, parse_size("256KB")]
    assert panel.points.max == 2


def test_explicit_cache_limits_replace_the_ladder(make_panel: Callable[..., SweepPanel]) -> None:
    panel = make_panel(small_work, cache_limits=["16MB", 0, "1MB", "16MB"])
    assert panel.cache_limits == [0, 1_000_000, 16_000_000]
    with pytest.raises(ValueError, match="invalid size 'lots'"):
        SweepPanel(small_work, cache_limits=["lots"])
    with pytest.raises(TypeError, match="workload must be callable"):
        SweepPanel("not a workload")  # type: ignore[arg-type]


# -- running ----------------------------------------------------------------------------------------


def test_run_fills_frame_plot_table_and_scrubber(make_panel: Callable[..., SweepPanel]) -> None:
    previous = memory.get_cache_limit()
    panel = make_panel(small_work, repeats=2, refresh=0)
    panel.span.index = (0, 4)
    panel.points.value = 3  # 0, 1MB, 16MB
    run_and_wait(panel)

    assert panel.error == "", panel.error
    result = panel.result
    assert result is not None and result.complete
    assert len(result.runs) == 6 and set(result.runs["cache_limit"]) == {0, 1_000_000, 16_000_000}
    assert (result.runs["error"] == "").all()
    assert panel.progress.value == panel.progress.max == 6
    assert memory.get_cache_limit() == previous
    assert plotted_points(panel.figure) == 3
    assert [row[0] for row in table_rows(panel)] == ["0", "1MB", "16MB"]
    assert [label for label, _ in panel.scrub.options] == ["0", "1MB", "16MB"]
    assert not panel.scrub.disabled and not panel.run_button.disabled and panel.stop_button.disabled

    panel.scrub.value = 16_000_000
    highlighted = [a for a in panel.figure.axes[0].get_children() if a.get_gid() == "highlight"]
    assert highlighted, "moving the scrubber did not highlight a point"
    details = BeautifulSoup(panel.details.value, "html.parser").get_text()
    assert "cache limit 16MB" in details and "x best" in details and "seconds (median)" in details
    assert bytes(panel.timeline.value).startswith(b"\x89PNG")  # memory over time at each limit


def test_plot_and_table_update_while_the_sweep_runs(make_panel: Callable[..., SweepPanel]) -> None:
    panel = make_panel(slow_work, repeats=3, refresh=0)
    panel.span.index = (0, 2)
    seen: list[int] = []
    panel.table.observe(lambda change: seen.append(len(table_rows(panel))), names="value")
    run_and_wait(panel)
    assert len(seen) >= 3, "the table was not redrawn as runs landed"
    assert seen[0] < 3 or len(seen) > 3  # it showed something before the end
    assert panel.result is not None and len(panel.result.runs) == 9


def test_stop_mid_sweep_keeps_runs_and_restores_limits(make_panel: Callable[..., SweepPanel]) -> None:
    previous = memory.get_cache_limit()
    panel = make_panel(slow_work, repeats=20)
    panel.span.index = (0, 2)  # 3 limits x 20 repeats = 60 planned runs (about 3 s)
    panel.run_button.click()
    deadline = time.monotonic() + 30
    while panel.progress.value < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert panel.running and not panel.stop_button.disabled
    panel.stop_button.click()
    assert panel.wait(30)

    result = panel.result
    assert result is not None and not result.complete
    assert 3 <= len(result.runs) < 60
    assert "stopped" in result.stop_reason
    assert memory.get_cache_limit() == previous
    assert "stopped" in panel.status.value
    assert not panel.run_button.disabled
    panel.repeats.value = 1
    run_and_wait(panel)  # still usable
    assert panel.result is not None and panel.result.complete and len(panel.result.runs) == 3


def test_an_erroring_workload_shows_its_error_as_text(make_panel: Callable[..., SweepPanel]) -> None:
    previous = memory.get_cache_limit()

    def broken() -> None:
        raise ValueError(HOSTILE.splitlines()[0] + " & <b>bold</b>")  # errors are kept as one line

    panel = make_panel(broken, repeats=1, label=HOSTILE)
    panel.span.index = (0, 1)
    run_and_wait(panel)
    assert panel.result is not None and panel.result.failed_runs == 2
    assert memory.get_cache_limit() == previous
    shown = BeautifulSoup(panel.errors.value, "html.parser")
    assert "ValueError: <script>alert('x')</script>" in shown.get_text()
    for box in (panel.errors, panel.status, panel.table, panel.details, panel.planned):
        assert "<script>" not in box.value and "<b>bold" not in box.value
    assert panel.progress.bar_style == "warning"


def test_errors_in_handlers_and_in_the_sweep_show_in_the_panel(make_panel: Callable[..., SweepPanel]) -> None:
    panel = make_panel(small_work, repeats=1)
    panel.export_buttons["json"].disabled = False
    panel.export_buttons["json"].click()  # nothing to export yet: shown, not raised
    assert "nothing to export yet" in panel.errors.value

    def fails_on_second_run(calls: list[int] = []) -> None:  # noqa: B006 - counts calls
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("second run broke")

    stopping = make_panel(fails_on_second_run, repeats=2, on_error="raise")
    stopping.span.index = (0, 1)
    run_and_wait(stopping)
    assert "SweepError" in stopping.error and "second run broke" in stopping.error
    shown = BeautifulSoup(stopping.errors.value, "html.parser").get_text()
    assert "SweepError" in shown and "1 failed: RuntimeError: second run broke" in shown
    assert stopping.result is not None and len(stopping.result.runs) == 2  # measured runs kept
    assert not stopping.run_button.disabled


def test_lazy_array_from_the_kernel_thread_gets_a_hint(make_panel: Callable[..., SweepPanel]) -> None:
    """MLX (0.31.2+) ties a lazy array to its thread's stream; the panel says what to do about it."""
    lazy = mx.ones((16, 16)) * 3  # recorded on this thread, not evaluated

    panel = make_panel(lambda: mx.eval(lazy + 1), repeats=1)
    panel.span.index = (0, 0)
    run_and_wait(panel)
    assert panel.result is not None and panel.result.failed_runs == 1
    assert "in current thread" in panel.result.runs["error"].iloc[0]
    hint = BeautifulSoup(panel.errors.value, "html.parser").get_text()
    assert "evaluate it (mx.eval) before the sweep" in hint
    mx.eval(lazy)
    panel.run(wait=True)
    assert panel.result.failed_runs == 0


def test_one_sweep_at_a_time_across_panels(make_panel: Callable[..., SweepPanel]) -> None:
    first = make_panel(slow_work, repeats=10)
    second = make_panel(small_work, repeats=1)
    first.run()
    try:
        while first.result is None:  # the first run has landed: its sweep holds the process
            time.sleep(0.01)
        second.run_button.click()
        assert "sweep 'slow_work' is measuring in this process" in second.error
        assert not second.running and second.result is None
        with pytest.raises(RuntimeError, match="already running"):
            first.run()
    finally:
        first.stop()
        assert first.wait(30)
    second.run(wait=True)
    assert second.result is not None and second.result.complete


def test_exports_write_files_and_link_them(make_panel: Callable[..., SweepPanel], tmp_path: Path) -> None:
    pytest.importorskip("mlxtune.report")
    panel = make_panel(small_work, repeats=1, label="exports")
    panel.span.index = (0, 1)
    run_and_wait(panel)
    for kind in ("html", "csv", "json"):
        panel.export_buttons[kind].click()
    assert panel.error == "", panel.error
    written = sorted((tmp_path / "out").iterdir())
    assert [p.suffix for p in written] == [".csv", ".html", ".json"]
    assert len({p.stem for p in written}) == 1 and written[0].stem.startswith("exports-")
    assert all(p.stat().st_size > 0 for p in written)
    links = BeautifulSoup(panel.links.value, "html.parser").find_all("a")
    assert sorted(Path(a["href"]).suffix for a in links) == [".csv", ".html", ".json"]


def test_display_gives_a_widget_bundle(make_panel: Callable[..., SweepPanel]) -> None:
    bundle = make_panel(small_work)._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle


# -- resources --------------------------------------------------------------------------------------


def _live_figures() -> int:
    gc.collect()
    return sum(isinstance(o, Figure) for o in gc.get_objects())


def assert_no_leaks(cycle: Callable[[], None], times: int = 5) -> None:
    """After a first cycle (fonts load, tqdm starts its monitor thread: once per process), more cycles
    leave no threads, open files or matplotlib figures behind."""
    process = psutil.Process()
    cycle()
    threads, files, figures = threading.active_count(), len(process.open_files()), _live_figures()
    for _ in range(times):
        cycle()
    assert threading.active_count() == threads
    assert len(process.open_files()) <= files
    assert _live_figures() <= figures


def test_many_runs_leave_no_threads_figures_or_files() -> None:
    def cycle() -> None:
        panel = SweepPanel(small_work, repeats=2, warmup=0, refresh=0)
        panel.span.index = (0, 2)
        for _ in range(2):
            run_and_wait(panel)
            panel.scrub.value = panel.scrub.options[-1][1]
        panel.close()

    assert_no_leaks(cycle, times=3)


# -- %%mlxsweep ---------------------------------------------------------------------------------------


def sweep_magic(shell: Any, line: str, cell: str) -> SweepPanel:
    shell.user_ns.pop("panel", None)
    shell.run_cell_magic("mlxsweep", f"{line} --wait -v panel", cell)
    panel = shell.user_ns["panel"]
    assert isinstance(panel, SweepPanel)
    return panel


def test_mlxsweep_sweeps_the_cell_and_counts_runs(shell: Any) -> None:
    previous = memory.get_cache_limit()
    cell = "x = mx.ones((512, 512))\nx @ x  # left lazy: the magic evaluates it"
    panel = sweep_magic(shell, "--cache-limits 0,16MB,unlimited -r 2 -w 0", cell)
    try:
        runs = panel.result.runs
        assert panel.result.complete and len(runs) == 6 and (runs["error"] == "").all()
        assert set(runs["cache_limit"]) == {0, 16_000_000, UNLIMITED}
        assert set(runs["unit"]) == {"runs"} and (runs["units"] == 1).all()
        assert (runs["peak_memory"] >= 512 * 512 * 4).all(), "the final expression was not evaluated"
        assert memory.get_cache_limit() == previous
        assert panel.result.workload.startswith("%%mlxsweep cell: x = mx.ones")
    finally:
        panel.close()


def test_mlxsweep_repeats_auto_runs_until_decided_within_its_rounds(shell: Any) -> None:
    panel = sweep_magic(shell, "--cache-limits 0,16MB --repeats auto -w 0", "x = mx.ones((64, 64))\nx * 2")
    try:
        assert panel.adaptive.value and panel.repeats.value == 10
        result = panel.result
        assert result.complete and result.options["repeats"] == "auto"
        assert 2 * 4 <= len(result.runs) <= 2 * 10 and result.stop_reason.startswith("stopped after")
        assert "runs (stopped after" in panel.status.value
        # finished early, as planned: a full green bar, not one stopped part way as though it failed
        assert panel.progress.value == panel.progress.max == len(result.runs)
        assert panel.progress.bar_style == "success"
    finally:
        panel.close()


def test_mlxsweep_paired_runs_the_cell_as_one_step_and_compares_within_cycles(shell: Any) -> None:
    previous = memory.get_cache_limit()
    panel = sweep_magic(shell, "--paired --cache-limits 0,16MB,unlimited -r 4 -w 0",
                        "x = mx.ones((128, 128))\nx @ x")
    try:
        result = panel.result
        assert result.design == "paired" and len(result.blocks) == 12 and result.complete
        assert (result.blocks["steps"] == Blocks().block).all()  # each block: that many runs of the cell
        assert 1 <= len(result.runs) <= 2  # one run of the cell is a whole run
        assert "12 blocks" in panel.status.value and "Paired within runs: 4 cycles" in panel.status.value
        assert memory.get_cache_limit() == previous
    finally:
        panel.close()


def test_mlxsweep_units_expression_names_the_unit(shell: Any) -> None:
    shell.run_cell("tokens = 0")
    cell = "tokens = 32\nmx.eval(mx.ones((8,)))"
    panel = sweep_magic(shell, "--cache-limits 1MB -r 2 -w 0 --units tokens", cell)
    try:
        runs = panel.result.runs
        assert set(runs["unit"]) == {"tokens"} and (runs["units"] == 32).all()
        assert (runs["throughput"] > 0).all()
    finally:
        panel.close()


def test_mlxsweep_quoted_units_expression_is_evaluated_not_kept_as_text(shell: Any) -> None:
    cell = "tokens = 32\nmx.eval(mx.ones((8,)))"
    panel = sweep_magic(shell, '--cache-limits 1MB -r 1 -w 0 --units "tokens * 2"', cell)
    try:
        runs = panel.result.runs
        assert (runs["error"] == "").all(), runs["error"].iloc[0]
        assert set(runs["unit"]) == {"units"} and (runs["units"] == 64).all()
    finally:
        panel.close()


def test_mlxsweep_cell_errors_show_in_the_panel(shell: Any) -> None:
    panel = sweep_magic(shell, "--cache-limits 0 -r 1 -w 0", "raise KeyError('<i>gone</i>')")
    try:
        assert panel.result.failed_runs == 1
        assert "KeyError" in panel.errors.value and "&lt;i&gt;gone" in panel.errors.value
    finally:
        panel.close()


def test_mlxsweep_hostile_cell_source_is_shown_as_text(shell: Any) -> None:
    cell = "note = '<script>alert(1)</script>'  # <img src=x onerror=alert(2)>\nraise ValueError(note)"
    panel = sweep_magic(shell, "--cache-limits 0 -r 1 -w 0", cell)
    try:
        boxes = [w.value for w in (panel.errors, panel.status, panel.table, panel.details, panel.planned)]
        assert not any("<script>" in value or "<img" in value for value in boxes)
        shown = BeautifulSoup(panel.errors.value, "html.parser").get_text()
        assert "ValueError: <script>alert(1)</script>" in shown
    finally:
        panel.close()


@pytest.mark.parametrize(
    ("line", "message"),
    [("--cache-limits banana", "invalid size 'banana'"), ("-r 0", "whole number >= 1"),
     ("--no-such-flag", "unrecognized arguments"), ("--units 'tokens *'", "invalid expression 'tokens \\*'")],
)
def test_mlxsweep_bad_options_are_one_line_and_run_nothing(shell: Any, line: str, message: str) -> None:
    from IPython.core.error import UsageError

    shell.user_ns["touched"] = False
    with pytest.raises(UsageError, match=message) as caught:
        shell.run_cell_magic("mlxsweep", line, "touched = True")
    assert "\n" not in str(caught.value)
    assert shell.user_ns["touched"] is False


def test_mlxsweep_leaves_no_threads_figures_or_files(shell: Any) -> None:
    def cycle() -> None:
        sweep_magic(shell, "--cache-limits 0,1MB -r 2 -w 0", "mx.eval(mx.ones((64, 64)) + 1)").close()

    assert_no_leaks(cycle)


def test_a_measured_cell_during_a_panel_sweep_is_refused_and_leaves_the_limits(
        make_panel: Callable[..., SweepPanel], shell: Any) -> None:
    """%%mlxmem --cache-limit while a panel sweeps: refused in one line; every limit stays as it was."""
    from IPython.core.error import UsageError

    panel = make_panel(slow_work, repeats=20, label="busy panel")
    panel.span.index = (0, 2)
    with memory.cache_limit("7MB"):
        panel.run()
        try:
            while panel.result is None:
                time.sleep(0.01)
            with pytest.raises(UsageError, match="%%mlxmem cannot start: sweep 'busy panel' is measuring"):
                shell.run_cell_magic("mlxmem", "--cache-limit 3MB", "x = 1")
        finally:
            panel.stop()
            assert panel.wait(30)
        assert memory.get_cache_limit() == 7_000_000
    shell.run_cell_magic("mlxmem", "--cache-limit 3MB -q", "x = 2")  # free again once the sweep ended
    assert shell.user_ns["x"] == 2


def test_cache_limits_given_as_one_string_are_read_as_sizes(make_panel: Callable[..., SweepPanel]) -> None:
    panel = make_panel(small_work, cache_limits="0,1MB, unlimited")
    assert [value for _, value in panel.span.options] == [0, parse_size("1MB"), UNLIMITED]


# -- views that do not mislead --------------------------------------------------------------------


def test_the_live_line_and_table_agree_and_the_finished_panel_does_not_say_it_may_change(
        make_panel: Callable[..., SweepPanel]) -> None:
    panel = make_panel(small_work, cache_limits=["0", "1MB", "unlimited"], repeats=3, refresh=0.0)
    assert panel.plot.layout.display == "none" and panel.timeline.layout.display == "none"  # no broken image
    seen: list[tuple[str, str]] = []
    panel.status.observe(lambda change: seen.append((change["new"], panel.table.value)), names="value")
    run_and_wait(panel)
    live = [(line, table) for line, table in seen if "measured" in line and "may still change" in table]
    assert live, "nothing was drawn while the sweep ran"
    for line, table in live:  # each progress line comes with a table of as many runs
        done = int(line.split(" of ", 1)[0])
        assert f"after {done} runs" in table
    assert "may still change" not in panel.table.value and panel.plot.layout.display is None
    assert panel.status.value.startswith("<div class='mlxtune-answer'><b>")  # the answer comes first
    plots: list[bytes] = []
    tables: list[str] = []
    panel.plot.observe(lambda change: plots.append(change["new"]), names="value")
    panel.table.observe(lambda change: tables.append(change["new"]), names="value")
    panel.run()  # a second sweep: the first one's plot and table go before anything of it is drawn
    assert panel.wait(60)
    assert plots[0] == b"" and tables[0] == "" and plots[-1] != b""
