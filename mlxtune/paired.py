"""The paired design: switch the cache limit between blocks of a step workload's steps, inside one run.

Why
---
On a GPU host (and laptops and phones are no quieter) each whole run falls into a fast or a slow
state that lasts the run: between-run variation is many times the 5% a recommendation must
resolve, so comparing whole runs, however many, rarely decides. A run's state moves every limit
measured inside it together, so comparing limits *within* a run cancels it (randomized blocks, as
in Kalibera and Jones, "Rigorous benchmarking in reasonable time").

How
---
A *step workload* (:func:`step_source`) hands the engine one step at a time. A *cycle* runs every
limit point once, in an order shuffled per cycle; each visit is a *block*: the limit is set,
``settle`` steps run untimed (the cache adapts to the new limit), then ``block`` steps are timed
and recorded (cycle, limit, steps, seconds, units, cache held at the end, memory at its start and
end: a sampling thread beside the steps doubled a block's noise on an H200). Each limit's speed is
then compared with the fastest limit's within the cycles both ran (:mod:`mlxtune.decision`); the
largest limit of each curve and the fastest so far run in every cycle.

A *generation* is one iterator from ``steps()``: for :func:`mlxtune.workloads.lm`, the same work
as one whole run (a fresh prompt, then ``gen_tokens`` decoded tokens). A generation that ends is
replaced at once (its first step, the prompt, is never timed); one that does not end is closed at
the first cycle boundary after ``generation`` steps. Within a cycle the order is shuffled, so a
context that grows over a generation falls on every limit alike and cannot bias a ratio
(``tests/test_paired.py`` shows it on a workload whose steps slow down as it goes). But what a limit
costs can itself change along a generation (a 1MB cache on an H200 kept up with a short context and
not with a long one), so an adaptive sweep runs every limit, and decides nothing, until a whole
generation has been measured: the answer covers the workload start to end, not its first steps.

Why these sizes (measured on an H200, 1.1B float16 decode, ``benchmarks/paired_noise.py``, BENCHMARKS.md):
what decides how soon an interval is narrow enough is the spread of a cycle's ratio squared times a
cycle's seconds. Blocks of 6 steps after 1 settling step reached a given width in 0.18-0.20x the
time of 12 after 2, in two sittings: shorter blocks are not noisier (robust spread 0.036-0.038
against 0.061-0.078), since the two blocks of a ratio lie closer together in time and the machine's
state moves less between them. Blocks of 4 were no better than 6; 24 and 48 steps, or 2, 3 or 12
settling steps, were slower to a given width. One settling step drops the step that was already
submitted under the previous limit (mlx-lm evaluates the next token ahead).

When an adaptive sweep judges (:class:`Pace`): the rule runs on every block so far, so judging
costs time that grows with the blocks; after every cycle it took 40-70 ms against cycles of about
0.2 s on an H200, a quarter to a third of a sweep's 30 s spent not measuring (BENCHMARKS.md). A
sweep judges after a cycle only once judging would take at most a tenth of its time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

from mlxtune.record import Work, Workload

__all__ = ["DESIGNS", "JUDGING_SHARE", "Blocks", "Generations", "Pace", "WholeRun", "step_source",
           "whole_run"]

#: Accepted values of ``sweep(design=...)``: "auto" pairs where the workload runs in steps.
DESIGNS = ("auto", "paired", "runs")


@dataclasses.dataclass(frozen=True)
class Blocks:
    """Sizes of the paired design, in steps: timed ``block`` steps after ``settle`` untimed ones at each
    switch, and a fresh generation after ``generation`` steps (at a cycle boundary)."""

    block: int = 6
    settle: int = 1
    generation: int = 2048

    def __post_init__(self) -> None:
        for name, least in (("block", 1), ("settle", 0), ("generation", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"Blocks.{name} must be a whole number of steps >= {least}, not {value!r}")


#: The most of an adaptive paired sweep's time that judging its blocks may take (:class:`Pace`).
JUDGING_SHARE = 0.1


class Pace:
    """When an adaptive paired sweep judges its blocks: after a cycle, once the time since the last
    judgment ended is long enough that the last one's cost is at most ``share`` of the two together.
    Cheap judgments (a sweep's first cycles) come after every cycle, so a quick answer stays quick;
    costly ones (hundreds of blocks) after every few, so the cycles are measured instead."""

    def __init__(self, share: float = JUDGING_SHARE,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.share, self.clock = share, clock
        self.cost = 0.0
        self.last = clock()

    def due(self) -> bool:
        return self.clock() - self.last >= self.cost * (1 - self.share) / self.share

    @contextlib.contextmanager
    def judging(self) -> Iterator[None]:
        """Time one judgment, which the next :meth:`due` weighs."""
        started = self.clock()
        try:
            yield
        finally:
            self.last = self.clock()
            self.cost = self.last - started


def step_source(workload: object) -> Callable[[], Iterator[Any]] | None:
    """How to start one generation of a step workload, or None for a whole-run workload.

    A step workload is either a generator function (``def work(): ... yield 1``) or an object with a
    ``steps()`` method returning an iterator. Each ``next()`` does one step of work, evaluated, and
    yields the units it did (a number; None counts one step; 0 marks a step that is not the work
    being compared, such as a prompt, which is then not timed). An object whose ``steps`` is None
    runs whole runs.
    """
    steps = getattr(workload, "steps", None)
    if callable(steps) and not inspect.isclass(workload):
        return steps  # type: ignore[no-any-return]
    if inspect.isgeneratorfunction(workload):
        return workload  # type: ignore[return-value]
    return None


def _close(iterator: Iterator[Any] | None) -> None:
    """End a generation early: a generator's ``close()`` runs its cleanup (mlx-lm's cache clearing
    switched back, a ``finally``); other iterators have nothing to end."""
    close = getattr(iterator, "close", None)
    if callable(close):
        close()


def _units(value: object) -> float:
    """A step's yielded value as units of work; one step when it yields None."""
    if value is None:
        return 1.0
    number = not isinstance(value, bool) and isinstance(value, (int, float))
    if not number or not math.isfinite(value) or value < 0:  # type: ignore[arg-type,operator]
        raise TypeError(f"a step must yield a number of work units >= 0 or None, not {value!r}")
    return float(value)


class Generations:
    """A step workload's generations, stepped by the engine: settle untimed, then a timed block."""

    def __init__(self, start: Callable[[], Iterator[Any]], unit: str, sizes: Blocks) -> None:
        self.start, self.unit, self.sizes = start, unit, sizes
        self.current: Iterator[Any] | None = None
        self.generation = -1  # the first fresh() makes it 0
        self.taken = 0  # steps of the current generation
        self.completed = 0  # generations measured to their end (or to the ``generation`` size)

    def fresh(self) -> None:
        """Close the current generation and start the next one, taking its first step untimed."""
        self.close()
        self.current = iter(self.start())
        self.generation += 1
        self.taken = 0
        if self._step() is None:
            raise ValueError("a generation of the step workload yielded no step: steps() must yield some")

    def close(self) -> None:
        current, self.current = self.current, None
        _close(current)

    def cycle_starts(self) -> None:
        """At a cycle boundary: a fresh generation when none runs or this one ran its share of steps."""
        if self.current is not None and self.taken >= self.sizes.generation:
            self.completed += 1
            self.fresh()
        elif self.current is None:
            self.fresh()

    def _step(self) -> float | None:
        """One step's units, or None when the generation has ended (it is then dropped)."""
        if self.current is None:
            return None
        try:
            value = next(self.current)
        except StopIteration:
            self.current = None
            self.completed += 1
            return None
        self.taken += 1
        return _units(value)

    def settle(self) -> None:
        """The untimed steps after a switch; a generation that ends here is replaced."""
        done = 0
        while done < self.sizes.settle or self.current is None:
            if self._step() is None:
                self.fresh()
            else:
                done += 1

    def block(self) -> Work:
        """The timed steps of one block; fewer when the generation ends during it (none: 0 steps).

        Each step is timed on its own and the block's seconds are those of its steps that did work:
        a step that yields 0 units (a chat turn's prompt) is neither counted nor timed.
        """
        units, steps, seconds = 0.0, 0, 0.0
        while steps < self.sizes.block:
            started = time.perf_counter()
            step = self._step()
            took = time.perf_counter() - started
            if step is None:
                break
            if step > 0:
                units, steps, seconds = units + step, steps + 1, seconds + took
        return Work(units=units, unit=self.unit, seconds=seconds or None,
                    metrics={"generation": float(self.generation), "steps": float(steps)})


class WholeRun:
    """A whole run of a step workload that has no ``__call__`` of its own: one fresh generation of at
    most ``steps`` steps (the sweep gives as many as one cycle takes), timed as any run: the
    confirming runs of the paired design."""

    def __init__(self, start: Callable[[], Iterator[Any]], unit: str, steps: int) -> None:
        self.start, self.unit, self.steps = start, unit, steps

    def __call__(self) -> Work:
        units = 0.0
        iterator = iter(self.start())
        try:
            for _, value in zip(range(self.steps), iterator, strict=False):
                units += _units(value)
        finally:
            _close(iterator)
        return Work(units=units, unit=self.unit)


def whole_run(workload: object, generations: Generations, steps: int) -> Callable[[], Any]:
    """How a step workload runs whole: its own ``__call__`` when it has one (an LM's prompt and
    decoding), else a :class:`WholeRun` of ``steps`` steps."""
    inherited = isinstance(workload, Workload) and type(workload).__call__ is Workload.__call__
    if callable(workload) and not inherited and not inspect.isgeneratorfunction(workload):
        return workload  # type: ignore[return-value]
    return WholeRun(generations.start, generations.unit, steps)
