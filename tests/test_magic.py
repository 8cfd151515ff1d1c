"""``%%mlxmem`` and ``%mlxmem`` in IPython's own shell, on real MLX: numbers, limits, errors, display."""

from __future__ import annotations

import dataclasses
import html
import os
import re
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import mlx.core as mx
import psutil
import pytest
from bs4 import BeautifulSoup
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import mlxtune
from mlxtune import memory
from mlxtune.magics import LAZY_NOTE, CellResult, MlxtuneMagics, mlx_arrays, parse_options
from mlxtune.units import UNLIMITED

MiB = 1024**2


@pytest.fixture(autouse=True)
def limits_in_force() -> Iterator[int]:
    """A known cache limit before each test; the test's limits are undone afterwards."""
    cache, mem = mx.set_cache_limit(UNLIMITED), mx.get_memory_limit()
    memory.set_cache_limit(7 * MiB)
    yield 7 * MiB
    memory.set_cache_limit(cache)
    mx.set_memory_limit(mem)


def mlxmem(shell: InteractiveShell, line: str, cell: str) -> CellResult:
    """Run ``%%mlxmem -o -q line`` and return its result object."""
    result = shell.run_cell_magic("mlxmem", f"-o -q {line}", cell)
    assert isinstance(result, CellResult)
    return result


def test_a_64mib_array_shows_in_active_memory_and_peak(shell: InteractiveShell) -> None:
    result = mlxmem(shell, "", "big = mx.ones((16 * 1024 * 1024,), dtype=mx.float32)\nbig")
    before, after = result.active
    assert after - before >= 64 * MiB
    assert result.peak >= 64 * MiB
    assert result.evaluated == 1
    assert not result.note
    shell.user_ns.pop("big")


def test_arrays_in_a_tree_are_evaluated_inside_the_measurement(shell: InteractiveShell) -> None:
    cell = "parts = {'a': mx.zeros((4 * 1024 * 1024,)), 'b': [mx.zeros((4 * 1024 * 1024,))]}\nparts"
    result = mlxmem(shell, "", cell)
    assert result.evaluated == 2
    assert result.peak - result.active[0] >= 32 * MiB
    shell.user_ns.pop("parts")


def test_no_eval_leaves_the_graph_lazy_and_says_so(shell: InteractiveShell,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # how quick a lazy cell must be is a clock threshold (10 ms) that busy cores can miss: here it is
    # out of the way, and the next test shows that a slow cell gets no note
    monkeypatch.setattr("mlxtune.magics.LAZY_NOTE_SECONDS", 60.0)
    result = mlxmem(shell, "--no-eval", "lazy = mx.ones((16 * 1024 * 1024,), dtype=mx.float32)\nlazy")
    before, after = result.active
    assert after - before < MiB and result.evaluated == 0
    assert result.note == LAZY_NOTE
    assert "MLX is lazy" in str(result) and "MLX is lazy" in result._repr_html_()
    shell.user_ns.pop("lazy")


def test_a_trailing_semicolon_keeps_the_value_out_of_out_but_still_evaluates_it(
        shell: InteractiveShell) -> None:
    with capture_output() as captured:
        outcome = shell.run_cell("%%mlxmem -v measured\nbig = mx.ones((1024, 1024)) * 3\nbig;")
    assert outcome.result is None and "array(" not in captured.stdout
    assert shell.user_ns["measured"].evaluated == 1  # the value was evaluated inside the measurement
    assert shell.run_cell("%%mlxmem -q\nmx.ones((4,)) * 3").result.tolist() == [3, 3, 3, 3]
    shell.user_ns.pop("big")


def test_a_slow_cell_that_moved_no_memory_is_not_called_lazy(shell: InteractiveShell) -> None:
    result = mlxmem(shell, "--no-eval", "import time\ntime.sleep(0.05)\nlazy = mx.ones((1024,))\nlazy")
    assert result.evaluated == 0 and not result.note
    shell.user_ns.pop("lazy")


def test_cache_limit_applies_to_the_cell_only(shell: InteractiveShell, limits_in_force: int) -> None:
    result = mlxmem(shell, "--cache-limit 1MB", "inside = memory.get_cache_limit()")
    assert shell.user_ns["inside"] == 1_000_000
    assert result.records[0].cache_limit == 1_000_000
    assert memory.get_cache_limit() == limits_in_force
    assert mx.set_cache_limit(limits_in_force) == limits_in_force  # read back through MLX itself


def test_a_limit_the_cell_sets_itself_is_kept_when_the_magic_set_none(shell: InteractiveShell,
                                                                        limits_in_force: int) -> None:
    """Restore only what the magic changed: a cell that sets its own cache limit keeps it, as a plain
    cell would (a memory limit set the same way is kept too)."""
    try:
        mlxmem(shell, "", "mx.set_cache_limit(1_234_567)\nx = mx.ones((64,)) * 2")
        assert memory.get_cache_limit() == 1_234_567
    finally:
        mx.set_cache_limit(limits_in_force)


def test_memory_and_wired_limits_apply_to_the_cell_only(shell: InteractiveShell) -> None:
    memory_before = mx.get_memory_limit()
    with warnings.catch_warnings(record=True) as caught:
        mlxmem(shell, "--memory-limit 3GiB --wired-limit 0", "inside = mx.get_memory_limit()")
    assert shell.user_ns["inside"] == 3 * 1024**3
    assert memory.backend() == "metal" or any("no effect" in str(w.message) for w in caught)
    assert mx.get_memory_limit() == memory_before


def test_memory_limit_below_active_memory_warns(shell: InteractiveShell) -> None:
    shell.run_cell("held = mx.ones((MiB,)); mx.eval(held)".replace("MiB", str(MiB)))
    for _ in range(2):  # every time, not once per session
        with pytest.warns(UserWarning, match="soft limit"):
            mlxmem(shell, "--memory-limit 1KB", "x = 1")
    shell.user_ns.pop("held")


def test_help_is_generated_from_the_options(shell: InteractiveShell) -> None:
    with capture_output() as captured:
        shell.run_cell("%%mlxmem?")
    for option in ("--cache-limit SIZE", "--repeat N", "--no-eval", "-v NAME"):
        assert option in captured.stdout


def test_clear_cache_empties_the_cache_before_the_run(shell: InteractiveShell) -> None:
    shell.run_cell("tmp = mx.zeros((1024 * 1024,)); mx.eval(tmp); del tmp")
    assert mx.get_cache_memory() > 0
    result = mlxmem(shell, "--clear-cache", "x = 1")
    assert result.cache[0] == 0


def test_repeats_and_warmups(shell: InteractiveShell) -> None:
    shell.user_ns["calls"] = 0
    result = mlxmem(shell, "-r 3 -w 2 --label rep", "calls += 1\nmx.ones((1000,)) * calls")
    assert shell.user_ns["calls"] == 5
    assert [r.repeat for r in result.records] == [0, 1, 2]
    assert len(result.times) == 3 and min(result.times) <= result.seconds <= max(result.times)
    assert result.peak == max(r.peak_memory for r in result.records)
    assert "median of 3" in str(result) and "after 2 warm-up" in str(result)


def test_v_stores_the_result_and_q_displays_nothing(shell: InteractiveShell) -> None:
    with capture_output() as captured:
        returned = shell.run_cell_magic("mlxmem", "-q -v stored", "x = 2")
    assert returned is None
    assert isinstance(shell.user_ns["stored"], CellResult)
    assert captured.outputs == [] and captured.stdout == ""


def test_default_display_is_an_html_table_with_a_text_form(shell: InteractiveShell) -> None:
    with capture_output() as captured:
        returned = shell.run_cell_magic("mlxmem", "--label shown", "x = 3")
    assert returned is None
    assert len(captured.outputs) == 1
    data = captured.outputs[0].data
    assert data["text/html"].startswith("<table") and "Peak increase" in data["text/html"]
    assert "Wall time" in data["text/plain"] and "shown" in data["text/plain"]


def test_o_returns_the_result_for_out(shell: InteractiveShell) -> None:
    with capture_output() as captured:
        returned = shell.run_cell_magic("mlxmem", "-o", "x = 4")
    assert isinstance(returned, CellResult)
    assert captured.outputs == []  # shown once, as the cell's Out


def test_magics_inside_the_cell_work(shell: InteractiveShell) -> None:
    with capture_output():
        mlxmem(shell, "", "%time timed = 41 + 1")
    assert shell.user_ns["timed"] == 42


def test_a_cell_that_raises_shows_the_traceback_restores_limits_and_is_recorded(
    shell: InteractiveShell, limits_in_force: int
) -> None:
    with capture_output() as captured:
        outcome = shell.run_cell("%%mlxmem --cache-limit 1MB --label bad\nx = 1\nraise ValueError('boom')")
    assert isinstance(outcome.error_in_exec, ValueError)
    shown = re.sub(r"\x1b\[[0-9;]*m", "", captured.stdout)
    assert "ValueError: boom" in shown and "raise ValueError('boom')" in shown
    assert "measure.py" not in shown and "magics.py" not in shown
    assert memory.get_cache_limit() == limits_in_force
    row = mlxtune.history().iloc[-1]
    assert (row["label"], row["error"], row["cache_limit"]) == ("bad", "ValueError: boom", 1_000_000)


def test_ctrl_c_is_raised_after_the_limits_are_restored_and_the_run_recorded(
    shell: InteractiveShell, limits_in_force: int
) -> None:
    with pytest.raises(KeyboardInterrupt):
        shell.run_cell_magic("mlxmem", "-q --cache-limit 0 --label interrupted", "raise KeyboardInterrupt")
    assert memory.get_cache_limit() == limits_in_force
    row = mlxtune.history().iloc[-1]
    assert (row["label"], row["error"], row["cache_limit"]) == ("interrupted", "KeyboardInterrupt", 0)


@pytest.mark.parametrize("between", [0, 1, 3])
def test_ctrl_c_between_repeats_stops_the_cell_keeps_the_runs_and_restores_the_limit(
    shell: InteractiveShell, limits_in_force: int, monkeypatch: pytest.MonkeyPatch, between: int
) -> None:
    """Ctrl-C that lands in the engine between two runs (here as the next run's limit is set) must
    reach the notebook, so "Run All" stops: it was swallowed, the cell went on, or IndexError came."""
    real, entered = memory.cache_limit, []

    def interrupted_before_run(limit: int) -> Any:
        entered.append(limit)
        if len(entered) == between + 1:  # ``between`` runs went first
            raise KeyboardInterrupt
        return real(limit)

    monkeypatch.setattr(memory, "cache_limit", interrupted_before_run)
    mlxtune.clear_history()
    with pytest.raises(KeyboardInterrupt):
        shell.run_cell_magic("mlxmem", "-r 5 --warmup 0 --cache-limit 2MB -v partial", "x = 1")
    assert len(shell.user_ns["partial"].records) == between
    assert f"runs={between}," in repr(shell.user_ns["partial"])  # shows, with no run too
    assert list(mlxtune.history()["error"]) == [""] * between
    assert memory.get_cache_limit() == limits_in_force


def test_a_failure_midway_through_repeats_keeps_the_runs_before_it(
    shell: InteractiveShell, limits_in_force: int
) -> None:
    mlxtune.clear_history()
    shell.user_ns["calls"] = 0
    cell = "calls += 1\nif calls == 3:\n    raise RuntimeError(f'run {calls}')"
    with pytest.raises(RuntimeError):
        shell.run_cell_magic("mlxmem", "-q -r 5 --cache-limit 2MB -v partial", cell)
    result = shell.user_ns["partial"]
    assert [r.error for r in result.records] == ["", "", "RuntimeError: run 3"]
    assert list(mlxtune.history()["error"]) == ["", "", "RuntimeError: run 3"]
    assert memory.get_cache_limit() == limits_in_force


def test_a_syntax_error_is_shown_and_nothing_runs(shell: InteractiveShell) -> None:
    count = len(mlxtune.history())
    with pytest.raises(SyntaxError):
        shell.run_cell_magic("mlxmem", "", "x = (")
    assert len(mlxtune.history()) == count


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("--cache-limit banana", "banana"),
        ("--cache-limit=-3MB", "-3MB"),
        ("--memory-limit 12parsecs", "12parsecs"),
        ("--bogus", "--bogus"),
        ("-r 0", "0"),
        ("-w -1", "-1"),
        ("-v 1abc", "1abc"),
    ],
)
def test_bad_options_are_one_line_and_the_cell_does_not_run(
    shell: InteractiveShell, line: str, named: str
) -> None:
    shell.user_ns.pop("ran", None)
    with pytest.raises(UsageError) as info:
        shell.run_cell_magic("mlxmem", line, "ran = True")
    assert "ran" not in shell.user_ns
    message = str(info.value)
    assert "\n" not in message and named in message


def test_a_bad_option_in_a_cell_prints_one_usage_line(shell: InteractiveShell) -> None:
    with capture_output() as captured:
        shell.run_cell("%%mlxmem --cache-limit banana\nran = True")
    assert captured.stderr.strip().startswith("UsageError:")
    assert len(captured.stderr.strip().splitlines()) == 1
    assert "ran" not in shell.user_ns


def test_history_has_one_row_per_run(shell: InteractiveShell) -> None:
    mlxtune.clear_history()
    mlxmem(shell, "--label one", "x = 1")
    mlxmem(shell, "--label two -r 2 --cache-limit 1MB", "\n\ny = mx.ones((10,))\ny")
    frame = mlxtune.history()
    assert list(frame["label"]) == ["one", "two", "two"]
    assert list(frame["cell"]) == ["x = 1", "y = mx.ones((10,))", "y = mx.ones((10,))"]
    assert list(frame["cache_limit"]) == [7 * MiB, 1_000_000, 1_000_000]
    assert frame["run"].iloc[1] == frame["run"].iloc[2] != frame["run"].iloc[0]
    for column in ("seconds", "peak_memory", "active_before", "active_after", "process_rss", "error"):
        assert column in frame.columns
    shown = shell.run_line_magic("mlxmem", "--history")  # formatted for reading, the same frame beneath
    page = shown.to_html()
    assert frame.equals(shown.data[frame.columns]) and "9223372036854775807" not in page
    headers = [th.get_text() for th in BeautifulSoup(page, "html.parser").select("thead th")]
    assert headers[:3] == ["run", "label", "cell"] and "active_before" not in headers and len(headers) <= 12


def test_line_magic_shows_a_snapshot(shell: InteractiveShell, limits_in_force: int) -> None:
    snap = shell.run_line_magic("mlxmem", "")
    assert isinstance(snap, memory.Snapshot)
    assert snap.cache_limit == limits_in_force


@pytest.mark.parametrize(
    "hostile",
    ['<script>alert("x")</script>', "a'b\"c", "<img src=x onerror=alert(1)>" * 500, "&lt;already&gt;"],
)
def test_hostile_label_cell_and_error_show_as_text_in_html(shell: InteractiveShell, hostile: str) -> None:
    cell = f"x = {hostile!r}  # {hostile}\nraise ValueError(x)"
    with pytest.raises(ValueError):
        shell.run_cell_magic("mlxmem", "-q -v hostile_result", cell)
    result = dataclasses.replace(shell.user_ns.pop("hostile_result"), label=hostile + "\n<b>second</b>")
    assert result.error == f"ValueError: {hostile}"
    page = result._repr_html_()
    assert "<script" not in page and "<img" not in page and "<b>" not in page
    assert html.escape(hostile[:40]) in page


def test_quoted_labels_lose_their_quotes(shell: InteractiveShell) -> None:
    assert mlxmem(shell, '--label "fast path"', "x = 1").label == "fast path"
    assert mlxmem(shell, "--label 'cache 0'", "x = 1").label == "cache 0"


def test_many_runs_leave_no_threads_figures_or_file_handles(shell: InteractiveShell) -> None:
    import matplotlib.pyplot as plt

    for _ in range(3):
        mlxmem(shell, "", "x = mx.ones((100,)) + 1\nx")
    process = psutil.Process(os.getpid())
    threads, fds, figures = threading.active_count(), process.num_fds(), len(plt.get_fignums())
    for index in range(200):
        mlxmem(shell, "-r 2 --cache-limit 1MB", f"x = mx.ones((100,)) + {index}\nx")
    assert threading.active_count() == threads
    assert process.num_fds() == fds
    assert len(plt.get_fignums()) == figures


def test_unload_removes_the_magics_and_load_brings_them_back(shell: InteractiveShell) -> None:
    shell.run_line_magic("unload_ext", "mlxtune")
    try:
        assert "mlxmem" not in shell.magics_manager.magics["cell"]
        assert "mlxmem" not in shell.magics_manager.magics["line"]
    finally:
        shell.run_line_magic("load_ext", "mlxtune")
    assert "mlxmem" in shell.magics_manager.magics["cell"]


def test_remembered_option_parses_are_not_shared() -> None:
    first = parse_options(MlxtuneMagics.mlxmem, "-r 2 --label shared")
    first.repeat, first.label = 9, "changed"
    again = parse_options(MlxtuneMagics.mlxmem, "-r 2 --label shared")
    assert (again.repeat, again.label) == (2, "shared")


def test_arrays_are_found_in_nested_and_self_referencing_containers() -> None:
    a, b = mx.zeros((2,)), mx.ones((3,))
    loop: list = [a]
    loop.append(loop)
    assert [x.shape for x in mlx_arrays({"x": [a, (b, {"y": a})]})] == [(2,), (3,), (2,)]
    assert [x.shape for x in mlx_arrays(loop)] == [(2,)]
    assert mlx_arrays("not arrays") == [] and mlx_arrays(3) == []
