"""Real sweeps on the CPU backend: run order, limits restored, faults recorded, hooks driven."""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import threading
import time
from pathlib import Path

import mlx.core as mx
import pandas as pd
import pytest
from bs4 import BeautifulSoup

import mlxtune
from mlxtune import memory, runner
from mlxtune.record import MEASURED_COLUMNS, RunRecord, Work
from mlxtune.stats import SUMMARY_COLUMNS
from mlxtune.sweep import PlanError, SweepError, SweepProgress, Workload, sweep
from mlxtune.units import UNLIMITED

MB = 1_000_000


def churn(n: int = 8, size: int = 64 * 1024) -> int:
    """Allocate and free ``n`` buffers of ``size`` floats each so the cache has something to hold."""
    total = mx.array(0.0)
    for i in range(n):
        total = total + (mx.ones((size,)) * i).sum()
    mx.eval(total)
    return n


class Counting:
    """A workload that counts its calls and can fail, hang or be interrupted on a chosen call."""

    def __init__(self, fail_on: set[int] = frozenset(), exc: BaseException | None = None,
                 hang: threading.Event | None = None) -> None:
        self.calls = 0
        self.fail_on, self.exc, self.hang = set(fail_on), exc, hang

    def __call__(self) -> int:
        self.calls += 1
        if self.calls in self.fail_on:
            if self.hang is not None:
                self.hang.wait(30)
            else:
                raise self.exc or RuntimeError(f"boom on call {self.calls}")
        return churn()


@pytest.fixture
def limits():
    """Known, unusual limits before each test, so restoring them can be checked by reading back."""
    with memory.cache_limit("7MB"), memory.memory_limit("3GB"):
        yield 7 * MB, 3_000_000_000


def assert_restored(limits: tuple[int, int]) -> None:
    assert (memory.get_cache_limit(), memory.get_memory_limit()) == limits


def test_frame_columns_rows_and_summary(limits):
    result = sweep(churn, cache_limits=[0, "1MB", "unlimited"], repeats=2, warmup=1, progress=False)
    assert result.complete and result.planned_runs == 6 and len(result.runs) == 6
    assert list(result.runs.columns[: 1 + len(MEASURED_COLUMNS)]) == ["cache_limit", *MEASURED_COLUMNS]
    assert sorted(set(result.runs["cache_limit"])) == [0, MB, UNLIMITED]
    assert (result.runs["error"] == "").all() and (result.runs["units"] == 8).all()
    assert (result.runs["peak_memory"] > 0).all()
    summary = result.summary_frame()
    assert list(summary.columns) == ["cache_limit", *SUMMARY_COLUMNS]
    assert list(summary["cache_limit"]) == [0, MB, UNLIMITED] and list(summary["runs"]) == [2, 2, 2]
    assert result.label == "churn" and result.params == ["cache_limit"]
    assert_restored(limits)


def test_cache_held_at_the_end_never_above_the_limit(limits):
    result = sweep(churn, cache_limits=[0, "256KB", "1MB", "4MB"], repeats=2, progress=False)
    assert (result.runs["cache_after"] <= result.runs["cache_limit"]).all()
    assert (result.runs.loc[result.runs["cache_limit"] == 0, "cache_after"] == 0).all()
    # with room to spare the cache does hold buffers, so the comparison above is not vacuous
    assert result.runs.loc[result.runs["cache_limit"] == 4 * MB, "cache_after"].min() > 0


def test_runs_are_interleaved_in_an_order_fixed_by_the_seed():
    sizes = [0, "1MB", "2MB", "4MB"]
    first = sweep(churn, cache_limits=sizes, repeats=4, warmup=0, progress=False, seed=3)
    again = sweep(churn, cache_limits=sizes, repeats=4, warmup=0, progress=False, seed=3)
    other = sweep(churn, cache_limits=sizes, repeats=4, warmup=0, progress=False, seed=4)
    order = list(first.runs["cache_limit"])
    assert order == list(again.runs["cache_limit"])
    assert order != list(other.runs["cache_limit"])
    assert order != sorted(order)
    for repeat in range(4):  # each round runs every limit once
        rows = first.runs[first.runs["repeat"] == repeat]
        assert sorted(rows["cache_limit"]) == [0, MB, 2 * MB, 4 * MB]
    assert list(first.runs["repeat"]) == sorted(first.runs["repeat"])
    rounds = [order[i : i + 4] for i in range(0, 16, 4)]
    assert len({tuple(r) for r in rounds}) > 1  # shuffled per round, not one order repeated


def test_an_error_run_is_recorded_and_the_sweep_goes_on(limits):
    work = Counting(fail_on={3})
    result = sweep(work, cache_limits=[0, "unlimited"], repeats=3, warmup=1, progress=False)
    assert result.complete and len(result.runs) == 6 and result.failed_runs == 1
    failed = result.runs[result.runs["error"] != ""]
    assert failed["error"].iloc[0] == "RuntimeError: boom on call 3"
    assert failed["throughput"].isna().all()
    assert result.summary_frame()["failed"].sum() == 1
    assert_restored(limits)


def test_on_error_raise_stops_with_the_partial_result(limits, tmp_path):
    work = Counting(fail_on={4})
    with pytest.raises(SweepError, match="boom on call 4") as caught:
        sweep(work, cache_limits=[0, "1MB"], repeats=3, warmup=1, on_error="raise", progress=False)
    result = caught.value.result
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert not result.complete and len(result.runs) == 3 and result.failed_runs == 1
    assert "boom on call 4" in result.stop_reason and work.calls == 4
    assert_restored(limits)
    assert_saved_intact(result, tmp_path)


def assert_saved_intact(result, tmp_path) -> None:
    """What was measured can be written and read back, whatever stopped the sweep."""
    loaded = mlxtune.load(result.to_json(tmp_path / "partial.json"))
    assert loaded.complete == result.complete and len(loaded.runs) == len(result.runs)
    assert list(loaded.runs["error"]) == list(result.runs["error"])


def test_keyboard_interrupt_returns_the_runs_so_far(limits, tmp_path):
    work = Counting(fail_on={5}, exc=KeyboardInterrupt())
    result = sweep(work, cache_limits=[0, "1MB", "2MB"], repeats=3, warmup=1, progress=False)
    assert not result.complete and result.planned_runs == 9
    assert len(result.runs) == 3 and result.failed_runs == 0  # the interrupted run is not a row
    assert "interrupted" in result.stop_reason and "incomplete (3 of 9 runs)" in repr(result)
    assert_restored(limits)
    assert_saved_intact(result, tmp_path)


def test_setup_and_teardown_run_outside_the_timed_part_once_per_point():
    events: list[str] = []

    class Loaded(Workload):
        def setup(self) -> None:
            events.append("setup")
            self.weights = mx.ones((64, 64))
            mx.eval(self.weights)

        def teardown(self) -> None:
            events.append("teardown")

        def describe(self) -> str:
            return "matmul 64x64"

        def __call__(self) -> int:
            events.append("run")
            mx.eval(self.weights @ self.weights)
            return 1

    result = sweep(Loaded(), cache_limits=[0, "1MB"], repeats=2, warmup=2, progress=False)
    assert events == ["setup", *["run"] * 6, "teardown"]
    assert result.workload == "matmul 64x64" and len(result.runs) == 4


def test_a_grid_with_a_factory_and_a_memory_limit_axis(limits):
    built: list[dict] = []

    def factory(point: dict):
        built.append(point)
        return lambda: churn(n=point["n"])

    result = sweep(factory, cache_limits=[0, "1MB"], grid={"n": [2, 4], "memory_limit": ["1GB", "2GB"]},
                   repeats=2, warmup=0, progress=False)
    assert built == [{"n": 2}, {"n": 4}]  # one workload per point of the workload axes
    assert result.params == ["cache_limit", "memory_limit", "n"]
    assert list(result.runs.columns[:3]) == result.params and len(result.runs) == 2 * 2 * 2 * 2
    assert (result.runs["units"] == result.runs["n"]).all()
    assert set(result.runs["memory_limit"]) == {1_000_000_000, 2_000_000_000}
    summary = result.summary_frame()
    assert len(summary) == 8 and list(summary.columns[:3]) == result.params
    assert_restored(limits)


def test_setup_failure_is_recorded_once_per_limit_point_of_its_workload_point():
    def factory(point: dict):
        if point["kind"] == "broken":
            raise OSError("no such model")
        return churn

    result = sweep(factory, cache_limits=[0, "1MB"], grid={"kind": ["broken", "fine"]}, repeats=2,
                   progress=False)
    assert result.complete and len(result.runs) == 2 + 4
    broken = result.runs[result.runs["kind"] == "broken"]
    assert sorted(broken["cache_limit"]) == [0, MB]
    assert (broken["error"] == "setup failed: OSError: no such model").all()
    assert (result.runs.loc[result.runs["kind"] == "fine", "error"] == "").all()


def test_on_run_sees_every_run_and_stop_ends_the_sweep(limits):
    stop = threading.Event()
    seen: list[tuple[int, int]] = []
    partial: list[int] = []

    def on_run(record, progress: SweepProgress) -> None:
        seen.append((progress.done, progress.planned))
        assert progress.point["cache_limit"] == record.cache_limit
        if progress.done == 3:
            partial.append(len(progress.result().runs))
            stop.set()

    result = sweep(churn, cache_limits=[0, "1MB"], repeats=3, on_run=on_run, stop=stop, progress=False)
    assert seen == [(1, 6), (2, 6), (3, 6)] and partial == [3]
    assert not result.complete and len(result.runs) == 3 and result.stop_reason == "stopped on request"
    assert_restored(limits)
    done: list[RunRecord] = []
    stopped = sweep(churn, cache_limits=[0], repeats=5, warmup=0, progress=False,
                    on_run=lambda record, progress: done.append(record), stop=lambda: len(done) >= 2)
    assert len(stopped.runs) == 2 and not stopped.complete


def test_a_failing_on_run_hook_keeps_the_runs(limits):
    def on_run(record, progress) -> None:
        if progress.done == 2:
            raise ValueError("front end bug")

    with pytest.raises(SweepError, match="front end bug") as caught:
        sweep(churn, cache_limits=[0, "1MB"], repeats=2, on_run=on_run, progress=False)
    assert len(caught.value.result.runs) == 2 and not caught.value.result.complete
    assert_restored(limits)


def test_progress_bar_shows_the_current_point(capsys):
    sweep(churn, cache_limits=["1MB"], repeats=2, warmup=0, label="demo", progress=True)
    assert "demo: cache_limit=1MB" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cache_limits": []}, "cache_limits is empty"),
        ({"cache_limits": ["12 parsecs"]}, "cache_limits: invalid size '12 parsecs'"),
        ({"cache_limits": [-1]}, "invalid size -1"),
        ({"repeats": 0}, "repeats must be a whole number >= 1"),
        ({"repeats": 2.5}, "repeats must be"),
        ({"warmup": -1}, "warmup must be a whole number >= 0"),
        ({"on_error": "ignore"}, "on_error must be one of 'record', 'raise'"),
        ({"timeout": 0}, "timeout must be a number of seconds > 0"),
        ({"timeout": float("inf")}, "timeout must be a number of seconds > 0"),
        ({"cache_limits": b"1MB"}, "cache_limits must be sizes such as .* not bytes"),
        ({"cache_limits": {"1MB": 1}}, "cache_limits must be sizes such as .* not dict"),
        ({"grid": {"batch": []}}, "grid axis 'batch' is empty"),
        ({"grid": {"batch": 4}}, "grid axis 'batch' must be a list"),
        ({"grid": {"memory_limit": ["lots"]}}, "grid axis 'memory_limit': invalid size 'lots'"),
        ({"grid": {"cache_limit": [0]}}, "cache_limits="),
        ({"grid": {"seconds": [1]}}, "clashes with a measured column"),
        ({"grid": {"label": ["a", "b"]}}, "grid axis 'label' clashes with a column the saved files add"),
        ({"stop": 3}, "stop must be a threading.Event"),
        ({"on_run": "print"}, "on_run must be a callable"),
    ],
)
def test_bad_arguments_fail_before_anything_runs(kwargs, message):
    work = Counting()
    arguments = {"cache_limits": [0, "1MB"], "progress": False, **kwargs}
    with pytest.raises(PlanError, match=message.replace("(", r"\(")):
        sweep(work, **arguments)
    assert work.calls == 0


def test_a_comma_separated_string_of_limits_is_read_as_sizes():
    result = sweep(churn, cache_limits="0, 1MB,unlimited", repeats=1, warmup=0, progress=False)
    assert sorted(set(result.runs["cache_limit"])) == [0, MB, UNLIMITED]


def test_a_huge_number_of_repeats_starts_at_once_and_builds_nothing_ahead(limits):
    stop = threading.Event()
    seen: list[int] = []

    def on_run(record: RunRecord, progress: SweepProgress) -> None:
        seen.append(progress.done)
        if progress.done == 3:
            stop.set()

    started = time.perf_counter()
    result = sweep(churn, cache_limits=[0, "1MB"], repeats=10**12, warmup=0, progress=False, on_run=on_run,
                   stop=stop)
    assert time.perf_counter() - started < 5 and seen == [1, 2, 3]
    assert result.planned_runs == 2 * 10**12 and not result.complete and len(result.runs) == 3
    assert_restored(limits)


class Odd:
    """A workload whose second call returns or raises something odd; the others do real work."""

    def __init__(self, odd) -> None:
        self.odd, self.calls = odd, 0

    def __call__(self):
        self.calls += 1
        churn()
        if self.calls != 2:
            return Work(units=8, unit="buffers", metrics={"extra": 1.0})
        if isinstance(self.odd, BaseException):
            raise self.odd
        return self.odd


@pytest.mark.parametrize(
    ("odd", "error"),
    [
        (Work(units="5"), "TypeError: Work.units must be a finite number >= 0, not '5'"),
        (Work(units=None), "TypeError: Work.units must be a finite number >= 0, not None"),
        (Work(units=float("nan")), "Work.units must be a finite number"),
        (Work(units=-1), "Work.units must be a finite number >= 0, not -1"),
        (Work(units=3, seconds="x"), "TypeError: Work.seconds must be a number of seconds > 0 or None"),
        (Work(units=3, metrics=5), "TypeError: Work.metrics must be a dict of name -> number, not int"),
        (Work(units=3, metrics={"x": "fast"}), "Work.metrics must map names to numbers"),
        (Work(units=3, metrics={"throughput": 1.0}), "metric 'throughput' has the name of a run column"),
        (Work(units=3, metrics={"cache_limit": 1.0}), "metric 'cache_limit' has the name of a run column"),
        (Work(units=3, metrics={"error": 0.0}), "metric 'error' has the name of a run column"),
        ("many", "TypeError: a workload must return a number of work units, a Work or None, not str"),
        (SystemExit(3), "SystemExit: 3"),
        (asyncio.CancelledError("cancelled"), "CancelledError: cancelled"),
        (pytest.skip.Exception("skipped inside a run"), "Skipped: skipped inside a run"),
        (Work(units=3, metrics={"label": 1.0}), "metric 'label' has the name of a run column"),
        (Work(units=3, metrics={"run": 1.0}), "metric 'run' has the name of a run column"),
    ],
)
def test_an_odd_run_is_recorded_as_failed_and_the_sweep_goes_on(limits, odd, error, tmp_path):
    work = Odd(odd)
    result = sweep(work, cache_limits=[0, "1MB"], repeats=2, warmup=0, progress=False)
    assert result.complete and len(result.runs) == 4 and result.failed_runs == 1
    assert error in result.runs["error"].iloc[1]
    ok = result.runs[result.runs["error"] == ""]
    assert (ok["throughput"] > 0).all() and (ok["cache_limit"].isin([0, MB])).all()
    assert (ok["extra"] == 1.0).all() and set(result.runs["unit"]) >= {"buffers"}
    assert_restored(limits)
    assert_saved_intact(result, tmp_path)


def test_a_teardown_that_raises_keeps_every_run_and_says_so(limits):
    class BrokenTeardown(Workload):
        def __call__(self) -> int:
            return churn()

        def teardown(self) -> None:
            raise OSError("could not unload")

    result = sweep(BrokenTeardown(), cache_limits=[0, "1MB"], repeats=2, progress=False)
    assert len(result.runs) == 4 and result.failed_runs == 0 and not result.complete
    assert result.stop_reason == "teardown() failed after the runs: OSError: could not unload"
    assert_restored(limits)


def test_a_second_sweep_while_one_runs_is_refused_and_changes_no_limit(limits):
    inner: list[BaseException] = []

    def nested() -> int:
        try:
            sweep(churn, cache_limits=["1MB"], repeats=1, progress=False)
        except runner.BusyError as exc:
            inner.append(exc)
        assert memory.get_cache_limit() == 0  # the outer sweep's limit, untouched by the refusal
        return churn()

    result = sweep(nested, cache_limits=[0], repeats=1, warmup=0, progress=False, label="outer")
    assert result.failed_runs == 0 and len(inner) == 1
    assert "sweep 'churn' cannot start: sweep 'outer' is measuring in this process" in str(inner[0])
    assert_restored(limits)


def test_a_workload_that_is_not_callable_is_a_type_error():
    with pytest.raises(TypeError, match="workload must be a callable"):
        sweep(42, cache_limits=[0], progress=False)


def test_a_name_that_is_no_model_and_no_function_is_a_plan_error():
    with pytest.raises(PlanError, match=re.escape("no model folder at 'model.safetensors' (a hub id")):
        sweep("model.safetensors", cache_limits=[0], progress=False)
    with pytest.raises(PlanError, match="cannot import 'no_such_module_x' for workload"):
        sweep("no_such_module_x:f", cache_limits=[0], progress=False)


def test_a_function_named_by_module_and_name_is_swept_and_labelled_by_it():
    result = sweep("mlxtune.workloads:allocator_churn", cache_limits=[0], repeats=1, warmup=0, progress=False)
    assert result.label == "allocator_churn" and result.unit == "buffers" and result.failed_runs == 0


def test_work_objects_give_the_unit_and_metric_columns():
    def decode() -> Work:
        churn()
        return Work(units=64, unit="tokens", seconds=0.5, metrics={"prompt_tps": 1000.0})

    result = sweep(decode, cache_limits=[0, "1MB"], repeats=2, progress=False)
    assert result.unit == "tokens" and (result.runs["throughput"] == 128.0).all()
    summary = result.summary_frame()
    assert (summary["unit"] == "tokens").all() and (summary["prompt_tps_median"] == 1000.0).all()


def test_a_comma_separated_string_of_limits_is_accepted():
    result = sweep(churn, cache_limits="0, 1MB,unlimited", repeats=1, warmup=0, progress=False)
    assert sorted(set(result.runs["cache_limit"])) == [0, MB, UNLIMITED]


# -- timeouts: the runs go to one worker thread -------------------------------------------------


def test_a_run_past_its_timeout_that_ends_within_the_grace_period_is_recorded(limits):
    class SlowOnce:
        calls = 0

        def __call__(self) -> int:
            self.calls += 1
            if self.calls == 3:
                threading.Event().wait(0.6)  # past the timeout, within the grace period (as long again)
            return churn()

    result = sweep(SlowOnce(), cache_limits=[0, "1MB"], repeats=2, warmup=1, timeout=0.5, progress=False)
    assert result.complete and len(result.runs) == 4 and result.failed_runs == 1
    error = result.runs.loc[result.runs["error"] != "", "error"].iloc[0]
    assert error.startswith("TimeoutError: the run took") and "over the timeout of 0.5s" in error
    assert_restored(limits)


def test_a_hung_run_is_abandoned_and_the_sweep_stops(limits, tmp_path):
    release = threading.Event()
    work = Counting(fail_on={3}, hang=release)
    result = sweep(work, cache_limits=[0, "1MB"], repeats=3, warmup=1, timeout=0.5, progress=False)
    try:
        assert not result.complete and len(result.runs) == 2 and result.failed_runs == 1
        assert "was abandoned" in result.runs["error"].iloc[-1]
        assert "nothing runs beside it" in result.stop_reason
        assert_restored(limits)
        assert_saved_intact(result, tmp_path)
        with pytest.raises(RuntimeError, match="still running"):
            sweep(churn, cache_limits=[0], progress=False)
    finally:
        release.set()
    deadline = time.monotonic() + 5
    while runner.worker().abandoned and time.monotonic() < deadline:  # the hung run ends once released
        time.sleep(0.01)
    assert len(sweep(churn, cache_limits=[0], repeats=1, progress=False).runs) == 1


def test_keyboard_interrupt_on_the_worker_thread_returns_the_runs_so_far(limits):
    work = Counting(fail_on={4}, exc=KeyboardInterrupt())
    result = sweep(work, cache_limits=[0, "1MB"], repeats=3, warmup=1, timeout=5, progress=False)
    assert not result.complete and len(result.runs) == 2 and "interrupted" in result.stop_reason
    assert_restored(limits)


def test_ctrl_c_while_waiting_on_the_worker_lets_its_run_end_first(limits):
    finished: list[int] = []

    class InterruptedFromOutside(Counting):
        def __call__(self) -> int:
            units = super().__call__()
            if self.calls == 3:  # a real SIGINT reaches the main thread while it waits for this run
                os.kill(os.getpid(), signal.SIGINT)
                threading.Event().wait(0.3)
                finished.append(self.calls)
            return units

    result = sweep(InterruptedFromOutside(), cache_limits=[0, "1MB"], repeats=3, timeout=5, progress=False)
    assert finished == [3]  # the main thread waited for the run before touching MLX again
    assert not result.complete and len(result.runs) == 1
    assert result.stop_reason == "interrupted (KeyboardInterrupt) after 1 runs"
    assert_restored(limits)


def test_arrays_built_in_setup_live_on_the_worker_threads_stream():
    class Model(Workload):
        def setup(self) -> None:
            self.w = mx.random.normal((32, 32))  # lazy: must be evaluated on the same thread

        def __call__(self) -> int:
            mx.eval(self.w @ self.w)
            return 1

    result = sweep(Model(), cache_limits=[0, "1MB"], repeats=2, timeout=5, progress=False)
    assert result.failed_runs == 0 and len(result.runs) == 4


# -- fault injection: rows kept, limits restored, state honest ----------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_failure_at_a_random_run_keeps_every_other_row(limits, seed, tmp_path):
    planned = 3 * 3
    bad = random.Random(seed).randint(2, planned + 1)  # call 1 is the warm-up
    work = Counting(fail_on={bad})
    result = sweep(work, cache_limits=[0, "1MB", "unlimited"], repeats=3, progress=False, seed=seed)
    assert result.complete and len(result.runs) == planned and result.failed_runs == 1
    assert result.runs["error"].iloc[bad - 2] == f"RuntimeError: boom on call {bad}"
    assert int(result.summary_frame()["failed"].sum()) == 1
    assert_restored(limits)
    assert_saved_intact(result, tmp_path)


def test_a_run_allocating_past_the_memory_limit_is_recorded_honestly(limits):
    def big() -> int:
        x = mx.ones((4_000_000,))  # 16 MB against a 5 MB memory limit
        mx.eval(x)
        return 1

    result = sweep(big, cache_limits=[0], grid={"memory_limit": ["5MB"]}, repeats=2, warmup=0,
                   timeout=10, progress=False)
    # the CPU backend does not enforce the memory limit: the run finishes and its peak shows the excess
    assert result.complete and len(result.runs) == 2
    ok = result.runs[result.runs["error"] == ""]
    assert (ok["peak_memory"] > ok["memory_limit"]).all()
    assert (result.runs["memory_limit"] == 5 * MB).all()
    assert_restored(limits)


def test_a_failed_runs_error_keeps_its_type_and_first_line(limits):
    """Not the message's last line (an indented detail), which names neither the type nor the cause."""
    def fails() -> int:
        raise ValueError("the model folder has no config.json\n  looked in: /models/x\n  details")

    result = sweep(fails, cache_limits=[0], repeats=1, warmup=0, progress=False)
    assert result.runs["error"].iloc[0] == "ValueError: the model folder has no config.json ..."


def test_a_failed_runs_whole_error_is_one_column_and_one_click_away(limits, tmp_path):
    """The one-line error names it; the whole error (every line, where it was raised) is kept in the
    frame, the CSV and the JSON, and shown in full under the HTML report's runs (Markdown, posted on
    pull requests, keeps the one line)."""
    def open_model() -> int:
        raise ValueError("the model folder has no config.json\n  looked in: /models/x\n  details")

    def fails() -> int:
        return open_model()

    result = sweep(fails, cache_limits=[0, "1MB"], repeats=1, warmup=0, progress=False)
    detail = result.runs["error_detail"].iloc[0]
    assert detail.startswith("Traceback (most recent call last):") and "in open_model" in detail
    message = "the model folder has no config.json\n  looked in: /models/x\n  details"
    assert detail.endswith(f"ValueError: {message}")
    written = pd.read_csv(result.to_csv(str(tmp_path / "runs.csv")), keep_default_na=False)
    assert written["error_detail"].tolist() == result.runs["error_detail"].tolist()
    again = mlxtune.load(result.to_json(str(tmp_path / "runs.json")))
    assert again.runs["error_detail"].tolist() == result.runs["error_detail"].tolist()
    page = BeautifulSoup(Path(result.to_html(str(tmp_path / "report.html"))).read_text(), "html.parser")
    shown = page.select_one("details#errors")
    assert shown.summary.get_text() == "Errors in full (2)"
    assert [p.get_text() for p in shown.find_all("p")] == [
        "run 0 (cache limit 0): ValueError: the model folder has no config.json ...",
        "run 1 (cache limit 1MB): ValueError: the model folder has no config.json ..."]
    assert [pre.get_text() for pre in shown.find_all("pre")] == result.runs["error_detail"].tolist()
    assert "Traceback" not in page.select_one("section#runs table").get_text()  # the table keeps one line
