"""Sweeps: run one workload under several cache (and memory) limits, interleaved, into a SweepResult.

How a sweep runs
----------------
- The grid is ``cache_limits`` x every axis of ``grid``. ``memory_limit`` is a built-in axis applied
  like the cache limit (sizes, around each run); any other axis is a *workload axis*: ``workload``
  is then a factory, called with one point of those axes (a dict) to build the callable to measure.
- Workload points run one after another (setup, warm-up, measured runs, teardown), so only one
  workload's arrays are alive at a time and none counts in another's peak. Within a workload point,
  runs are interleaved: each repeat round runs every limit point once, in an order shuffled by
  ``seed``, so slow drift of the machine does not masquerade as a trade-off.
- ``warmup`` unmeasured runs go first for each workload point (compilation, first touches of the
  weights), under the limits in force when ``sweep`` was called. Not per limit: every measured run
  starts from a cleared cache anyway. A warm-up that raises ends the warm-up; the measured runs
  then record the error if it persists.
- Each measured run goes through :func:`mlxtune.measure.measure` (clear the cache, synchronize,
  reset the peak, time, synchronize, record) inside :func:`mlxtune.memory.cache_limit` and
  :func:`mlxtune.memory.memory_limit`, so every limit is restored on any exit, Ctrl-C included.

Workloads
---------
A workload is a callable returning how much work it did (see :func:`mlxtune.record.as_work`). It
may also have ``setup()`` and ``teardown()``, called outside the timed part, and ``describe()``,
a one-line description stored in ``SweepResult.workload``. :class:`Workload` is a base class for
that shape; any object with those methods works.

Hooks for front ends
--------------------
``on_run(record, progress)`` is called after every measured run (failed ones too) with the
:class:`~mlxtune.record.RunRecord` and a :class:`SweepProgress` (counts, current point, and
``progress.result()`` to build the partial SweepResult on demand). ``stop`` (a ``threading.Event``
or a callable returning True to stop) is checked before every run; a stopped sweep returns its runs
marked ``complete=False``. These are the only ways a front end gets progress or stops a sweep.
Both run on the thread that called ``sweep`` (a front end that keeps its event loop free calls
``sweep`` from a thread of its own), between runs: keep ``on_run`` short, and know that Stop takes
effect when the current run ends. If ``on_run`` raises, the sweep stops with :class:`SweepError`
carrying the runs so far.

Faults
------
- A run that raises is recorded with its error and the sweep goes on (``on_error="record"``), or
  the sweep stops and raises :class:`SweepError`, whose ``result`` holds the runs so far
  (``complete=False``) and whose ``__cause__`` is the run's exception (``on_error="raise"``).
- Ctrl-C (``KeyboardInterrupt``, also raised by a workload) stops the sweep, which *returns* the
  runs measured so far, marked ``complete=False``. The interrupted run is not recorded.
- A run that returns something that is not a count of work (``Work(units="5")``, a metric named
  like a run column) or raises ``SystemExit`` is recorded as failed, with the reason, like a run
  that raises. A ``teardown()`` that raises after the runs keeps every run; the result is marked
  incomplete with the teardown's error as the reason.
- ``timeout`` (seconds per run): the sweep then runs every MLX call of the workload (factory,
  setup, warm-up, runs, teardown) on mlxtune's worker thread (:mod:`mlxtune.runner`) and waits for
  each run at most ``timeout`` seconds. MLX streams belong to the thread that made them (arrays the
  workload receives from outside must already be evaluated), and MLX must not evaluate on two
  threads at once, so a run
  past its timeout is waited on for a grace period of as long again. If it finishes, it is recorded
  as a ``TimeoutError`` (its measurements kept) and the sweep goes on. If not, it is abandoned: the
  sweep records it, restores the limits and stops (``complete=False``) without starting anything
  else, and later sweeps in this process refuse to start until the abandoned run ends (a run that
  never ends needs a fresh process). Without ``timeout``, everything runs on the calling thread,
  unless that is not the main thread (a front end's own thread): then on the worker thread too.
- One sweep or measured cell at a time per process (:func:`mlxtune.runner.exclusive`): limits are
  process-wide, so a second one would change the first one's limits. It is refused at once with
  :class:`~mlxtune.runner.BusyError`, before any limit is touched.
- Bad arguments raise one :class:`PlanError` (a ValueError; TypeError for a workload that is not
  callable) before anything runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import itertools
import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from mlxtune import memory, remote, runner
from mlxtune.decision import MIN_ROUNDS, TOLERANCE, Decision, decide, next_round
from mlxtune.environment import environment
from mlxtune.measure import Measured, measure
from mlxtune.paired import DESIGNS, Blocks, Generations, Pace, step_source, whole_run
from mlxtune.record import (
    FILE_COLUMNS,
    MEASURED_COLUMNS,
    RunRecord,
    Workload,
    describe_error,
    error_detail,
    runs_frame,
)
from mlxtune.result import SweepResult
from mlxtune.sampler import DEFAULT_INTERVAL, Sampler
from mlxtune.stats import summarize
from mlxtune.units import limit_text, parse_size, parse_sizes

__all__ = ["ON_ERROR", "PlanError", "SweepError", "SweepProgress", "Workload", "sweep"]

#: Accepted values of ``on_error``.
ON_ERROR = ("record", "raise")

_LIMIT_AXES = ("cache_limit", "memory_limit")
#: A limit point: (cache limit, memory limit or None).
_LimitPoint = tuple[int, int | None]
#: Rounds an adaptive sweep runs at most per workload point when ``max_runs`` is not given.
DEFAULT_MAX_ROUNDS = 10
#: Cycles an adaptive paired sweep runs at most per workload point when ``max_runs`` is not given: a
#: cycle costs a few dozen steps, not a whole run per limit. 400 cycles of 6-step blocks take the time
#: 200 of 12-step blocks did; with 200, sweeps on an H200 gave up on a limit near the tolerance after
#: 4 s of measuring, as more cycles than were left (BENCHMARKS.md, ``benchmarks/paired_replay.py``).
DEFAULT_MAX_CYCLES = 400


_NEEDS_STEPS = "design='paired' needs a step workload (a generator function, or an object with steps())"


class PlanError(ValueError):
    """An argument of :func:`sweep` cannot be used; raised before anything runs."""


class SweepError(RuntimeError):
    """A sweep stopped by an error; ``result`` holds the runs measured until then."""

    def __init__(self, message: str, result: SweepResult) -> None:
        super().__init__(message)
        self.result = result


# -- the plan: validated arguments --------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Plan:
    cache_limits: list[int]
    memory_limits: list[int] | None
    axes: dict[str, list[Any]]
    repeats: int  # rounds per workload point: exactly, or at most when adaptive
    warmup: int
    seed: int
    on_error: str
    timeout: float | None
    stop: Callable[[], bool]
    adaptive: bool = False
    max_seconds: float | None = None
    tolerance: float = TOLERANCE
    budget: int | None = None
    sample_interval: float | None = DEFAULT_INTERVAL
    design: str = "auto"
    blocks: Blocks = dataclasses.field(default_factory=Blocks)
    #: rounds (cycles) of a paired design: exactly, or at most when adaptive
    cycles: int = 0
    #: False when the cache limit is the one in force (``cache_limits=None``): then it is neither set
    #: nor restored around a run, so a limit the workload sets itself stays (``%%mlxmem``'s cell)
    apply_cache_limit: bool = True

    @property
    def limit_params(self) -> list[str]:
        return ["cache_limit"] + (["memory_limit"] if self.memory_limits is not None else [])

    @property
    def params(self) -> list[str]:
        return [*self.limit_params, *self.axes]

    def workload_points(self) -> list[dict[str, Any]]:
        names = list(self.axes)
        return [dict(zip(names, values, strict=True)) for values in itertools.product(*self.axes.values())]

    def limit_points(self) -> list[tuple[int, int | None]]:
        return list(itertools.product(self.cache_limits, self.memory_limits or [None]))

    def references(self) -> set[_LimitPoint]:
        """The limit point each paired comparison is made against: the largest cache limit, per memory
        limit (every curve of the decision has its own)."""
        largest = max(self.cache_limits)
        return {(largest, memory_limit) for memory_limit in self.memory_limits or [None]}

    @property
    def planned_runs(self) -> int:
        limit_points = len(self.cache_limits) * len(self.memory_limits or [None])
        return math.prod(map(len, self.axes.values())) * limit_points * self.repeats



def _axes(grid: Mapping[str, Sequence[Any]] | None) -> tuple[list[int] | None, dict[str, list[Any]]]:
    if grid is None:
        return None, {}
    if not isinstance(grid, Mapping):
        raise ValueError(f"grid must be a dict of axis name -> list of values, not {type(grid).__name__}")
    memory_limits, axes = None, {}
    for name, values in grid.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"grid axis names must be identifiers such as 'batch', not {name!r}")
        if name == "cache_limit":
            raise ValueError("give cache limits with cache_limits=[...], not as a grid axis")
        if name == "memory_limit":
            memory_limits = parse_sizes(values, "grid axis 'memory_limit'")
            continue
        if name in MEASURED_COLUMNS:
            raise ValueError(f"grid axis {name!r} clashes with a measured column; rename it")
        if name in FILE_COLUMNS:
            raise ValueError(f"grid axis {name!r} clashes with a column the saved files add "
                             f"({', '.join(FILE_COLUMNS)}); rename it")
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise ValueError(f"grid axis {name!r} must be a list of values, not {values!r}")
        values = list(values)
        if not values:
            raise ValueError(f"grid axis {name!r} is empty: give at least one value")
        odd = next((v for v in values if v is not None and not isinstance(v, (str, int, float))), None)
        if odd is not None:  # a point of the grid is a row of a table, saved, loaded and grouped by
            raise ValueError(f"grid axis {name!r} values must be numbers, text, true/false or None, "
                             f"not {type(odd).__name__}")
        axes[name] = values
    return memory_limits, axes


def _stopper(stop: threading.Event | Callable[[], bool] | None) -> Callable[[], bool]:
    if stop is None:
        return lambda: False
    if hasattr(stop, "is_set"):
        return stop.is_set
    if callable(stop):
        return lambda: bool(stop())
    raise ValueError(f"stop must be a threading.Event or a callable returning True to stop, not {stop!r}")


def _plan(
    workload: object,
    cache_limits: object,
    repeats: object,
    warmup: object,
    grid: Mapping[str, Sequence[Any]] | None,
    seed: object,
    on_error: object,
    timeout: object,
    on_run: object,
    stop: threading.Event | Callable[[], bool] | None,
    adaptive: Mapping[str, Any],
) -> _Plan:
    named = isinstance(workload, (str, os.PathLike))
    if not callable(workload) and not named and step_source(workload) is None:
        raise TypeError(f"workload must be a callable (a factory with grid=), an object with steps(), or a "
                        f"name (a model folder or id, 'module:function'), not {type(workload).__name__}")
    auto = repeats == "auto"
    for name, value, least in (("repeats", 1 if auto else repeats, 1), ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            also = ' or "auto"' if name == "repeats" else ""
            raise ValueError(f"{name} must be a whole number >= {least}{also}, not {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, not {seed!r}")
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {', '.join(map(repr, ON_ERROR))}, not {on_error!r}")
    if on_run is not None and not callable(on_run):
        raise ValueError(f"on_run must be a callable(record, progress) or None, not {on_run!r}")
    memory_limits, axes = _axes(grid)
    limits = parse_sizes(cache_limits, "cache_limits")
    points = len(limits) * len(memory_limits or [None])
    design, blocks = adaptive["design"], adaptive["blocks"]
    if design not in DESIGNS:
        raise ValueError(f"design must be one of {', '.join(map(repr, DESIGNS))}, not {design!r}")
    if blocks is not None and not isinstance(blocks, Blocks):
        raise ValueError(f"blocks must be mlxtune.Blocks(block=, settle=, generation=) or None, "
                         f"not {blocks!r}")
    if design == "paired" and not axes and not named and step_source(workload) is None:
        raise ValueError(f"{_NEEDS_STEPS}; give design='runs' for whole runs")
    return _Plan(
        cache_limits=limits,
        memory_limits=memory_limits,
        axes=axes,
        repeats=_adaptive_rounds(adaptive, points) if auto else int(repeats),  # type: ignore[call-overload]
        warmup=warmup,
        seed=seed,
        on_error=str(on_error),
        timeout=_seconds("timeout", timeout),
        stop=_stopper(stop),
        adaptive=auto,
        max_seconds=_seconds("max_seconds", adaptive["max_seconds"]),
        tolerance=_fraction("tolerance", adaptive["tolerance"]),
        sample_interval=Sampler(adaptive["sample_interval"]).interval or None,  # checks it too
        budget=None if adaptive["budget"] is None else parse_size(adaptive["budget"]),
        design=design,
        blocks=blocks or Blocks(),
        cycles=_adaptive_rounds(adaptive, points, DEFAULT_MAX_CYCLES) if auto else int(repeats),  # type: ignore
    )


def _adaptive_rounds(adaptive: Mapping[str, Any], points: int, default: int = DEFAULT_MAX_ROUNDS) -> int:
    """The most rounds an adaptive sweep may run: ``max_runs`` over the limit points (else ``default``)."""
    most = adaptive["max_runs"]
    if most is None:
        return default
    if isinstance(most, bool) or not isinstance(most, int) or most < MIN_ROUNDS * points:
        raise ValueError(f"max_runs must be a whole number of runs that allows at least {MIN_ROUNDS} rounds "
                         f"of the {points} limit points (>= {MIN_ROUNDS * points}), not {most!r}")
    return most // points


def _seconds(name: str, value: object) -> float | None:
    number = not isinstance(value, bool) and isinstance(value, (int, float))
    if value is not None and not (number and 0 < value <= runner.MAX_TIMEOUT):  # type: ignore[operator]
        raise ValueError(f"{name} must be a number of seconds > 0 (at most a day) or None, not {value!r}")
    return None if value is None else float(value)  # type: ignore[arg-type]


def _fraction(name: str, value: object) -> float:
    number = not isinstance(value, bool) and isinstance(value, (int, float))
    if not (number and 0 <= value < 1):  # type: ignore[operator]
        raise ValueError(f"{name} must be a fraction in [0, 1) such as 0.05, not {value!r}")
    return float(value)  # type: ignore[arg-type]


# -- progress for front ends --------------------------------------------------------------------


@dataclasses.dataclass
class SweepProgress:
    """Where a sweep stands, handed to ``on_run`` after every run.

    ``done`` of ``planned`` runs are recorded; ``point`` is the grid point of the last run (limits
    included); ``records`` are all runs so far. ``result()`` builds the partial SweepResult (cost
    grows with the number of runs, so call it when you need it, not on every run of a long sweep).
    """

    planned: int
    records: list[RunRecord]
    point: dict[str, Any]
    _build: Callable[[], SweepResult]

    @property
    def done(self) -> int:
        return len(self.records)

    def result(self) -> SweepResult:
        return self._build()


# -- the sweep ----------------------------------------------------------------------------------


def _name(workload: object) -> str:
    return str(getattr(workload, "__name__", None) or type(workload).__name__)


def _describe(instance: object) -> str:
    describe = getattr(instance, "describe", None)
    return str(describe()) if callable(describe) else _name(instance)


def _point_text(point: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{name}={limit_text(value) if name in _LIMIT_AXES else value}" for name, value in point.items()
    )


def _params(point: Mapping[str, Any], memory_limit: int | None) -> dict[str, Any]:
    """A run's parameters besides the cache limit: the memory limit when swept, then the workload point."""
    return {**({"memory_limit": memory_limit} if memory_limit is not None else {}), **point}


def _failed_record(
    params: dict[str, Any], cache: int, repeat: int, started_at: float, message: str,
    failure: BaseException | None = None,
) -> RunRecord:
    """A row for a run that produced no measurement of its own (setup failed, run abandoned);
    ``failure`` gives its ``error_detail`` (else the message).

    Counters are read without ``mx.synchronize()``, so the row does not wait on the pending work of
    a run that may still be going on another thread. (Where reading the cache limit synchronizes
    the CPU streams, :data:`mlxtune.memory.LIMIT_READ_SYNCS`, that read still does, as restoring
    the limits does.)
    """
    now = memory.snapshot(sync=False)
    seconds = max(time.time() - started_at, 0.0)
    return RunRecord(
        params=params, repeat=repeat, seconds=seconds, wall_seconds=seconds, units=0.0, unit="runs",
        peak_memory=now.peak, active_before=now.active, active_after=now.active, cache_before=now.cache,
        cache_after=now.cache, process_rss=now.process_rss, cache_limit=cache,
        memory_limit=params.get("memory_limit", now.memory_limit), started_at=started_at, error=message,
        error_detail=message if failure is None else error_detail(failure),
        footprint_peak=max(now.peak, now.active + now.cache), process_peak=now.process_memory,
    )


class _Stop(Exception):
    """Ends the sweep early; the message becomes ``stop_reason``."""


class _Sweep:
    """The state of one sweep: its plan, its runs (and blocks) so far, its progress bar and hooks."""

    def __init__(self, plan: _Plan, workload: Callable[..., Any], label: str | None, clear_cache: bool,
                 progress: bool, on_run: Callable[[RunRecord, SweepProgress], Any] | None,
                 options: dict[str, Any]) -> None:
        from tqdm.auto import tqdm

        self.plan, self.workload, self.clear_cache, self.on_run = plan, workload, clear_cache, on_run
        self.sample_interval = plan.sample_interval
        self.label = label or _name(workload)
        self.records: list[RunRecord] = []  # whole runs and blocks, in the order they were measured
        self.adaptive_notes: list[str] = []
        self.last_stop = ""  # why the last workload point stopped, for the finished bar
        self.started = time.monotonic()
        self.description = ""
        self.complete, self.stop_reason = True, ""
        self.environment = environment()
        self.planned = plan.planned_runs
        self.options = {
            "cache_limits": plan.cache_limits, "grid": {**plan.axes, **(
                {"memory_limit": plan.memory_limits} if plan.memory_limits is not None else {})},
            "repeats": "auto" if plan.adaptive else plan.repeats, "warmup": plan.warmup, "seed": plan.seed,
            "on_error": plan.on_error, "timeout": plan.timeout, "clear_cache": clear_cache,
            "design": plan.design,
            **({"max_runs": plan.planned_runs, "max_seconds": plan.max_seconds, "tolerance": plan.tolerance,
                "budget": plan.budget} if plan.adaptive else {}),
            **options,
        }
        self.bar = tqdm(total=plan.planned_runs, desc=self.label, disable=not progress, leave=True)
        # the calling thread runs MLX itself unless a timeout needs a thread to wait on, or it is a
        # thread of its own that will end (a front end's): see mlxtune.runner on both
        off_main = threading.current_thread() is not threading.main_thread()
        self.runner: runner.Inline | runner.Worker = (
            runner.worker() if plan.timeout or off_main else runner.Inline()
        )

    # -- results
    def result(self) -> SweepResult:
        ended = "; ".join(self.adaptive_notes)
        reason = self.stop_reason if not self.complete or not ended else ended
        return SweepResult.from_records(
            self.records, self.plan.params, label=self.label,
            workload=self.description or _name(self.workload), complete=self.complete,
            planned_runs=self.planned, stop_reason=reason, environment=self.environment,
            options=dict(self.options))

    def stopped(self, reason: str) -> None:
        """Mark the sweep incomplete; a later reason (a teardown failing after Stop) joins the first."""
        self.complete = False
        self.stop_reason = f"{self.stop_reason}; {reason}" if self.stop_reason else reason

    # -- running
    def run(self) -> None:
        rng = random.Random(self.plan.seed)
        for point in self.plan.workload_points():
            # a spent budget sets up no further point: none is warmed up and run once more
            if self.plan.adaptive and (spent := self.time_spent()):
                self.adaptive_notes.append(f"{_point_text(point)}: not measured, {spent}")
                self.last_stop = spent
                continue
            self.run_point(point, rng)

    def run_point(self, point: dict[str, Any], rng: random.Random) -> None:
        self.check_stop()
        try:
            build = (lambda: self.workload(dict(point))) if self.plan.axes else (lambda: self.workload)
            instance = self.runner.call(build)
            if not callable(instance) and step_source(instance) is None:
                raise TypeError(f"the workload factory returned {type(instance).__name__}, not a callable")
            if not self.description:
                self.description = _describe(instance)
            generations = self.generations(instance)
            setup = getattr(instance, "setup", None)
            if callable(setup):
                self.runner.call(setup)
        except Exception as exc:  # recorded against every limit point of this workload point
            self.setup_failed(point, exc)
            return
        try:
            if generations is None:
                self.warm_up(instance)
                self.run_rounds(instance, point, rng)
            else:
                self.run_cycles(instance, generations, point, rng)
        finally:
            if generations is not None and not self.runner.abandoned:
                self.runner.call(generations.close)
            self.tear_down(instance)

    def generations(self, instance: object) -> Generations | None:
        """The steps of a workload the paired design runs; None when it runs whole runs."""
        source = step_source(instance)
        if self.plan.design == "paired" and source is None:
            raise TypeError(f"{_NEEDS_STEPS}, and the factory returned a whole-run workload")
        if source is None or self.plan.design == "runs":
            return None
        unit = str(getattr(instance, "unit", "") or "steps")
        return Generations(source, unit, self.plan.blocks)

    def run_rounds(self, instance: Callable[[], Any], point: dict[str, Any], rng: random.Random) -> None:
        """Every limit point once per round, each round shuffled; made one round at a time, so a plan of
        a billion repeats costs nothing before its first run. Adaptive: after each round, only the
        points that can still change the answer run again (:func:`mlxtune.decision.next_round`)."""
        running = self.plan.limit_points()
        first = len(self.records)
        for repeat in range(self.plan.repeats):
            order = list(running)
            rng.shuffle(order)
            for limits in order:
                self.measured_run(instance, point, limits, repeat)
            if self.plan.adaptive:
                running = self.race(point, first, repeat + 1, self.plan.repeats)
                if not running:
                    return
        if self.plan.adaptive:
            self.ended(point, "it ran the most rounds allowed (max_runs)", first)

    def run_cycles(self, instance: object, generations: Generations, point: dict[str, Any],
                   rng: random.Random) -> None:
        """The paired design (:mod:`mlxtune.paired`): every limit point once per cycle, in a shuffled order,
        a block each, the reference always among them; adaptive cycles race as rounds do. Then whole
        runs at the answer and at the reference, so the memory shown for them is a real run's."""
        first = len(self.records)
        references = self.plan.references()
        points = self.plan.limit_points()
        self.options["blocks"] = dataclasses.asdict(self.plan.blocks)
        # this point's share of the plan: its cycles' blocks and the confirming runs, not rounds of runs
        self.replan(len(points) * self.plan.repeats, len(points) * self.plan.cycles + len(references) + 1)
        for _ in range(self.plan.warmup):  # compilation and first touches, untimed
            self.check_stop()
            if not self.warmed(lambda: (generations.settle(), generations.block()), "block"):
                self.runner.call(generations.close)  # the measured blocks start a fresh generation
                break
        running, pace = points, Pace()
        for cycle in range(self.plan.cycles):
            order = [limits for limits in points if limits in running or limits in references]
            rng.shuffle(order)
            self.check_stop()
            self.runner.call(generations.cycle_starts, self.plan.timeout)
            for limits in order:
                self.measured_block(generations, point, limits, cycle)
            # adaptive: every point, and no verdict, until a whole generation is measured (what a limit
            # costs can change along a generation: the answer is for all of it, not its first steps)
            if self.plan.adaptive and not generations.completed:
                if spent := self.time_spent():
                    self.ended(point, f"{spent} before a whole generation was measured", first)
                    break
            elif self.plan.adaptive and (pace.due() or self.time_spent()):
                with pace.judging():
                    running = self.race(point, first, cycle + 1, self.plan.cycles, give_up=False)
                if not running:
                    break
        else:
            if self.plan.adaptive:
                self.ended(point, "it ran the most cycles allowed (max_runs)", first)
        self.runner.call(generations.close)  # its context and buffers stay out of the whole runs
        self.confirm(instance, generations, point, first)

    def confirm(self, instance: object, generations: Generations, point: dict[str, Any], first: int) -> None:
        """Whole runs at the recommended limit point (if any) and at the reference it was compared with."""
        decision = self.decision(first)
        chosen = [] if decision.choice is None else [_limit_point(decision.points.loc[decision.choice])]
        memory_limits = {m for _, m in chosen} or {m for _, m in self.plan.references()}
        confirming = chosen + sorted((c, m) for c, m in self.plan.references() if m in memory_limits
                                     and (c, m) not in chosen)
        sizes = self.plan.blocks
        cycle_steps = len(self.plan.limit_points()) * (sizes.block + sizes.settle)
        whole = whole_run(instance, generations, min(sizes.generation, cycle_steps))
        self.replan(len(self.plan.references()) + 1, len(confirming))
        for repeat, limits in enumerate(confirming):
            self.measured_run(whole, point, limits, repeat)

    def replan(self, planned: int, instead: int) -> None:
        """Count ``instead`` measurements where ``planned`` were counted, in progress and in the result."""
        self.planned += instead - planned
        self.bar.total = self.planned

    def race(self, point: dict[str, Any], first: int, rounds: int, most: int,
             give_up: bool = True) -> list[_LimitPoint]:
        """The limit points the next round runs; none (and the reason noted) when this point is done."""
        decision = self.decision(first)
        step = next_round(decision, rounds, most, give_up)
        stop = step.stop or self.time_spent()
        if stop:
            self.ended(point, stop, first)
            return []
        return [_limit_point(row) for _, row in decision.points.loc[step.points].iterrows()]

    def time_spent(self) -> str:
        """Why an adaptive sweep stops on its time budget, or "" while there is time left."""
        seconds = self.plan.max_seconds
        return (f"its time (max_seconds={seconds:g}) was spent"
                if seconds is not None and self.elapsed() >= seconds else "")

    def decision(self, first: int) -> Decision:
        """The rule on this workload point's measurements so far: its blocks when it ran in blocks."""
        params = self.plan.limit_params
        measured = self.records[first:]
        paired = any(r.block for r in measured)
        rows = runs_frame([r for r in measured if r.block == paired], params[1:])
        return decide(rows, summarize(rows, params), params, tolerance=self.plan.tolerance,
                      budget=self.plan.budget, paired=paired)

    def ended(self, point: dict[str, Any], why: str, first: int) -> None:
        """Note why an adaptive sweep stopped running a workload point, with the rounds and runs it took."""
        measured = self.records[first:]
        rounds = 1 + max((r.repeat for r in measured), default=-1)
        where = f"{_point_text(point)}: " if point else ""
        rounds_of, runs_of = ("cycles", "blocks") if any(r.block for r in measured) else ("rounds", "runs")
        done = f"{rounds} {rounds_of} ({len(measured)} {runs_of})"
        self.adaptive_notes.append(f"{where}stopped after {done}: {why}")
        self.last_stop = why

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def tear_down(self, instance: object) -> None:
        """Call the workload's ``teardown()``; a failure there is noted, and every run kept."""
        teardown = getattr(instance, "teardown", None)
        if not callable(teardown) or self.runner.abandoned:
            return
        try:
            self.runner.call(teardown)
        except Exception as exc:  # the runs are measured already: say so, lose nothing
            self.stopped(f"teardown() failed after the runs: {describe_error(exc)}")

    def setup_failed(self, point: dict[str, Any], exc: Exception) -> None:
        """One failed row per limit point (not per planned run: a plan may hold millions)."""
        message = f"setup failed: {describe_error(exc)}"
        if self.plan.on_error == "raise":
            raise _Raise(message) from exc
        started_at = time.time()
        for cache, memory_limit in self.plan.limit_points():
            params = _params(point, memory_limit)
            record = _failed_record(params, cache, 0, started_at, message, exc)
            self.add(record, {"cache_limit": cache, **params})

    def warm_up(self, instance: Callable[[], Any]) -> None:
        for _ in range(self.plan.warmup):
            self.check_stop()
            if not self.warmed(instance, "run"):
                return

    def warmed(self, work: Callable[[], Any], what: str) -> bool:
        """One unmeasured ``work`` under the limits in force; False when it raised (the measured runs
        record the error if it persists). One still running past its timeout's grace stops the sweep."""
        try:
            self.runner.call(work, self.plan.timeout)
        except runner.Late:
            pass
        except runner.Abandoned as late:
            raise _Stop(f"a warm-up {what} was still running {late.seconds:.3g}s after it started "
                        f"(timeout {self.plan.timeout:g}s) and was abandoned; nothing else was run "
                        "beside it") from None
        except Exception:
            return False
        return True

    def check_stop(self) -> None:
        if self.plan.stop():
            raise _Stop("stopped on request")

    def measured_run(self, instance: Callable[[], Any], point: dict[str, Any],
                     limits: tuple[int, int | None], repeat: int) -> None:
        """One whole run under ``limits``, from a cleared cache (``clear_cache``)."""
        self.measured(lambda params: measure(instance, params=params, repeat=repeat, clear=self.clear_cache,
                                             sample_interval=self.sample_interval),
                      point, limits, repeat, block=False)

    def measured_block(self, generations: Generations, point: dict[str, Any], limits: tuple[int, int | None],
                       cycle: int) -> None:
        """One block of the paired design under ``limits``: settling steps, then the timed block. The cache
        is not cleared: the switch itself is what the settling steps absorb. A block that found its
        generation at its end is tried once more in a fresh one; a failed block ends its generation."""
        def block(params: dict[str, Any]) -> Measured:
            for _ in range(2):
                try:
                    generations.settle()
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:  # recorded as the block's failure, like a failing step
                    generations.close()
                    return _failed_measure(params, limits, cycle, exc)
                # sampled at its start and end only: a sampling thread beside 12 decode steps doubled the
                # spread of a block's speed on an H200 (benchmarks/paired_noise.py); the confirming
                # whole runs are sampled in full
                measured = measure(generations.block, params=params, repeat=cycle, clear=False,
                                   sample_interval=None)
                if measured.exception is not None:
                    generations.close()
                if measured.exception is not None or measured.record.metrics["steps"]:
                    break
            return measured

        self.measured(block, point, limits, cycle, block=True)

    def measured(self, run: Callable[[dict[str, Any]], Measured], point: dict[str, Any],
                 limits: tuple[int, int | None], repeat: int, *, block: bool) -> None:
        """Measure ``run`` under ``limits`` (restored on any exit) and add its record; timeouts, abandoned
        runs and ``on_error="raise"`` handled alike for runs and blocks."""
        self.check_stop()
        cache, memory_limit = limits
        params = _params(point, memory_limit)
        where = {"cache_limit": cache, **params}
        self.bar.set_description_str(f"{self.label}: {_point_text(where)}", refresh=False)
        started_at = time.time()
        failure: BaseException | None = None
        with contextlib.ExitStack() as applied:
            if self.plan.apply_cache_limit:
                applied.enter_context(memory.cache_limit(cache))
            if memory_limit is not None:
                applied.enter_context(memory.memory_limit(memory_limit))
            try:
                measured: Measured = self.runner.call(lambda: run(params), self.plan.timeout)
                record, failure = measured.record, measured.exception
            except runner.Late as late:
                message = (f"TimeoutError: the run took {late.seconds:.3g}s, over the timeout of "
                           f"{self.plan.timeout:g}s")
                record = dataclasses.replace(late.value.record, error=message)
                failure = TimeoutError(message)
            except runner.Abandoned as late:
                message = (f"TimeoutError: the run was still running {late.seconds:.3g}s after it started "
                           f"(timeout {self.plan.timeout:g}s) and was abandoned")
                failed = _failed_record(params, cache, repeat, started_at, message)
                self.add(dataclasses.replace(failed, block=block), where)
                raise _Stop(f"{message}; the sweep stopped so that nothing runs beside it") from None
        record = dataclasses.replace(record, block=block)
        self.add(record, where)
        if failure is not None and self.plan.on_error == "raise":
            what = "block" if block else "run"
            message = f"{what} {len(self.records)} ({_point_text(where)}) failed: {record.error}"
            raise _Raise(message) from failure

    def add(self, record: RunRecord, point: dict[str, Any]) -> None:
        self.records.append(record)
        self.bar.update(1)
        if self.on_run is not None:
            self.on_run(record, SweepProgress(self.planned, self.records, point, self.result))

    def close(self) -> None:
        """Close the bar; a sweep that ended as planned, an adaptive one early included, shows it full,
        with why it stopped (a bar left short reads as a failure: red in a notebook)."""
        if self.complete and self.bar.total != self.bar.n:
            self.bar.total = self.bar.n
            if self.last_stop:
                self.bar.set_postfix_str(self.last_stop, refresh=False)
            self.bar.refresh()
        self.bar.close()


def _limit_point(row: pd.Series) -> _LimitPoint:
    """A decision row's limit point: (cache limit, memory limit or None)."""
    memory_limit = row.get("memory_limit")
    return int(row["cache_limit"]), None if memory_limit is None else int(memory_limit)


def _failed_measure(params: dict[str, Any], limits: _LimitPoint, cycle: int, exc: BaseException) -> Measured:
    """A block whose settling steps raised: recorded as failed, with what the counters say now."""
    record = _failed_record(params, limits[0], cycle, time.time(), describe_error(exc), exc)
    return Measured(record=record, exception=exc)


class _Raise(Exception):
    """``on_error="raise"``: stop and raise SweepError with the partial result."""


def sweep(
    workload: Callable[..., Any],
    cache_limits: Iterable[int | str] | str = ("0", "unlimited"),
    repeats: int | str = "auto",
    warmup: int = 1,
    label: str | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
    seed: int = 0,
    progress: bool = True,
    on_error: str = "record",
    timeout: float | None = None,
    clear_cache: bool = True,
    on_run: Callable[[RunRecord, SweepProgress], Any] | None = None,
    stop: threading.Event | Callable[[], bool] | None = None,
    max_runs: int | None = None,
    max_seconds: float | None = None,
    tolerance: float = TOLERANCE,
    budget: int | str | None = None,
    sample_interval: float | None = DEFAULT_INTERVAL,
    holder: str | None = None,
    isolate: Any = False,
    design: str = "auto",
    blocks: Blocks | None = None,
    **options: Any,
) -> SweepResult:
    """Measure ``workload`` under each cache limit (and grid point), ``repeats`` times, interleaved
    (by default "auto": until the recommendation is decided).

    ``cache_limits``: sizes as ints or strings ("16MB", "unlimited"; a comma-separated string is
    split), or None for the one limit in force. ``grid``: more axes; ``memory_limit`` is applied
    like the cache limit, any other axis makes ``workload`` a factory called with one point of
    those axes. ``label`` names the result
    (default: the workload's name). ``options`` are extra context (e.g. ``model="..."``) stored in
    ``SweepResult.options``. See the module docstring for the run order, hooks and faults.

    ``repeats="auto"`` sweeps adaptively: rounds run until the recommendation is decided (see
    :mod:`mlxtune.decision`, with ``tolerance`` and the memory ``budget``), racing out the points
    that can no longer change it, or until ``max_runs`` runs (default: 10 rounds) or ``max_seconds``
    are spent, or no open point could be decided within them. ``stop_reason`` says which.
    ``sample_interval``: seconds between memory samples during each run (:mod:`mlxtune.sampler`;
    None for none); each run's timeline is kept in ``SweepResult.timelines``. ``holder`` is how the
    one-at-a-time rule names this measurement to another one it refuses (default "sweep 'label'").

    ``workload`` may also be a name: a model folder or hub id (timed by
    :func:`mlxtune.workloads.lm`) or an importable ``"module:function"`` returning the workload.
    ``isolate=True`` runs the sweep in a fresh ipyparallel engine process (started and stopped here;
    an ipyparallel Cluster or Client uses its first engine instead), so the caller's memory and
    threads stay out of the numbers; the workload must then be a name or a picklable callable
    (:mod:`mlxtune.remote`). Progress, ``on_run``, ``stop`` and Ctrl-C work the same.

    ``design``: a step workload (a generator function, or an object with ``steps()``, as
    :func:`mlxtune.workloads.lm` is) is measured in the paired design by default ("auto" or
    "paired"): the limit switches between blocks of steps inside one run, every limit once per
    cycle, and each is compared with the largest within the cycle; ``repeats`` then counts cycles
    ("auto": until decided). Whole runs at the answer and at the largest limit follow, for memory.
    ``blocks`` sets the block, settling and generation sizes (:class:`mlxtune.paired.Blocks`).
    ``design="runs"`` measures whole runs, as for any other workload.
    """
    given = {name: value for name, value in locals().items() if name in _SENT}  # what an engine runs with
    adaptive = {name: given[name] for name in _ADAPTIVE}

    def planned() -> _Plan:
        return _checked_plan(workload, cache_limits, repeats, warmup, grid, seed, on_error, timeout, on_run,
                             stop, adaptive)

    label = _label(workload, label)
    if isolate is not False:
        shared, stopper = engine_settings(workload, **{**given, "label": label}, **options)
        return _isolated(isolate, shared, stopper, progress, on_run)
    if isinstance(workload, (str, os.PathLike)):
        gridded = isinstance(grid, Mapping) and any(name != "memory_limit" for name in grid)
        workload = _named(workload, gridded)
    plan = planned() if cache_limits is not None else None  # bad arguments fail before anything else
    with runner.exclusive(holder or f"sweep {label or _name(workload)!r}"):
        plan = plan or planned()  # the limit in force is read only once this sweep holds the process
        return _run(_Sweep(plan, workload, label, clear_cache, progress, on_run, options))


#: The arguments of :func:`sweep` that bound its adaptive rule and its design.
_ADAPTIVE = ("max_runs", "max_seconds", "tolerance", "budget", "sample_interval", "design", "blocks")
#: The arguments of :func:`sweep` an engine process runs a sweep with (:func:`engine_settings`); the
#: others (progress, on_run, holder, isolate) stay with the caller.
_SENT = ("cache_limits", "repeats", "warmup", "label", "grid", "seed", "on_error", "timeout", "clear_cache",
         "stop", *_ADAPTIVE)


def _checked_plan(workload: object, cache_limits: object, repeats: object, warmup: object,
                  grid: Mapping[str, Sequence[Any]] | None, seed: object, on_error: object, timeout: object,
                  on_run: object, stop: threading.Event | Callable[[], bool] | None,
                  adaptive: dict[str, Any]) -> _Plan:
    """:func:`_plan`, with every wrong argument raised as one PlanError; None limits: the one in force."""
    try:
        if repeats != "auto" and (adaptive["max_runs"] is not None or adaptive["max_seconds"] is not None):
            raise ValueError('max_runs and max_seconds bound an adaptive sweep: give repeats="auto"')
        limits = [memory.get_cache_limit()] if cache_limits is None else cache_limits
        plan = _plan(workload, limits, repeats, warmup, grid, seed, on_error, timeout, on_run, stop, adaptive)
        return dataclasses.replace(plan, apply_cache_limit=cache_limits is not None)
    except ValueError as exc:  # one type for "the arguments were wrong", which front ends report as usage
        raise PlanError(str(exc)) from None


def engine_settings(workload: object, **given: Any) -> tuple[remote.Settings, Callable[[], bool]]:
    """A sweep's arguments (as :func:`sweep` takes them) checked here, in the form an engine process
    runs them (:class:`mlxtune.remote.Settings`), and the caller's stop test. A workload that cannot
    travel, like any wrong argument, raises PlanError before an engine is asked for anything. The
    arguments are :func:`sweep`'s, by name, with its defaults: they are spelled once, there."""
    try:
        bound = inspect.signature(sweep).bind(workload, **given)
    except TypeError as exc:  # a misspelled or repeated name: as sweep() itself would refuse it
        raise PlanError(str(exc)) from None
    bound.apply_defaults()
    a = bound.arguments
    cache_limits, label, options = a["cache_limits"], a["label"], a["options"]
    adaptive = {name: a[name] for name in _ADAPTIVE}
    plan = _checked_plan(workload, cache_limits, a["repeats"], a["warmup"], a["grid"], a["seed"],
                         a["on_error"], a["timeout"], None, a["stop"], adaptive)
    try:
        packed = remote.pack(workload)
    except ValueError as exc:
        raise PlanError(str(exc)) from None
    label = _label(workload, label)
    axes = dict(plan.axes)
    if plan.memory_limits is not None:
        axes["memory_limit"] = plan.memory_limits
    limits = None if cache_limits is None else plan.cache_limits  # None: the limit in force there
    arguments = dict(adaptive, label=label, seed=a["seed"], on_error=a["on_error"], timeout=a["timeout"],
                     clear_cache=a["clear_cache"], cache_limits=limits, warmup=plan.warmup, grid=axes or None,
                     repeats="auto" if plan.adaptive else plan.repeats, **options)
    label = label or _name(workload)
    shared = remote.Settings(run_in_engine, packed, arguments, plan.params, plan.planned_runs, label)
    return shared, plan.stop


def run_in_engine(packed: bytes, arguments: dict[str, Any]) -> dict[str, Any]:
    """Runs in an ipyparallel engine (:mod:`mlxtune.remote`): the sweep, each run published on the
    engine's data channel as it ends, and the result as the JSON text a results file holds."""
    import json
    import pickle

    from ipyparallel.datapub import publish_data

    from mlxtune.store import to_document

    def forward(record: RunRecord, progress: SweepProgress) -> None:
        publish_data({f"run{progress.done - 1}": record, "done": progress.done})

    error = ""
    try:
        result = sweep(pickle.loads(packed), on_run=forward, progress=False, **arguments)
    except SweepError as exc:
        result, error = exc.result, str(exc)
    return {"document": json.dumps(to_document(result, derived=False), allow_nan=False), "error": error}


def _label(workload: object, label: str | None) -> str | None:
    """The label given, or for a workload given by name its short form (a model's folder, a function)."""
    if label is None and isinstance(workload, (str, os.PathLike)):
        from mlxtune.workloads.named import short_name

        return short_name(os.fspath(workload))
    return label


def _named(name: str | os.PathLike[str], gridded: bool) -> Callable[..., Any]:
    from mlxtune.workloads.named import from_name

    try:
        return from_name(name, gridded)
    except ValueError as exc:
        raise PlanError(str(exc)) from None


def _isolated(where: Any, shared: remote.Settings, stop: Callable[[], bool], progress: bool,
              on_run: Callable[[RunRecord, SweepProgress], Any] | None) -> SweepResult:
    """The sweep in an engine process (:mod:`mlxtune.remote`), as an in-process sweep ends: an
    ``on_run`` that raises stops the engine's sweep and raises SweepError with the runs so far."""
    hook_failed: list[Exception] = []

    def forward(job: remote.Job, record: RunRecord) -> None:
        if on_run is not None and not hook_failed:
            so_far = SweepProgress(planned=shared.planned_runs, records=list(job.records),
                                   point=dict(record.params), _build=lambda: remote.partial(job, shared))
            try:
                on_run(record, so_far)
            except Exception as exc:  # the engine is stopped (below), not left running the sweep
                hook_failed.append(exc)

    job = remote.isolated(where, shared, progress=progress, on_record=forward,
                          stop=lambda: bool(hook_failed) or stop())
    if hook_failed:
        message = f"on_run raised {describe_error(hook_failed[0])}; the sweep stopped"
        kept = dataclasses.replace(job.result or remote.partial(job, shared), complete=False,
                                   stop_reason=message)
        raise SweepError(message, kept) from hook_failed[0]
    if job.result is None:  # the engine died (killed for memory, say): what it streamed back is kept
        message = f"the isolated sweep gave no result: {job.error}"
        kept = dataclasses.replace(remote.partial(job, shared), stop_reason=message)
        raise SweepError(message, kept)
    if job.sweep_error:
        raise SweepError(job.sweep_error, job.result)
    return job.result


#: How a sweep's ``stop_reason`` begins when Ctrl-C stopped it (the magic raises it again).
INTERRUPTED = "interrupted (KeyboardInterrupt)"


def _run(state: _Sweep) -> SweepResult:
    """Run a sweep to its end, turning every way it can end into a result or a SweepError."""
    try:
        state.run()
    except _Stop as stopped:
        state.stopped(str(stopped))
    except KeyboardInterrupt:
        note = "; a run is still going on in a background thread" if state.runner.abandoned else ""
        state.stopped(f"{INTERRUPTED} after {len(state.records)} runs{note}")
    except _Raise as failed:
        state.stopped(str(failed))
        raise SweepError(str(failed), state.result()) from failed.__cause__
    except Exception as exc:
        state.stopped(f"stopped by an error outside the runs: {describe_error(exc)}")
        raise SweepError(state.stop_reason, state.result()) from exc
    finally:
        state.close()
    return state.result()
