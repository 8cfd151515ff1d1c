"""IPython magics: ``%%mlxmem`` measures a cell, ``%mlxmem`` shows a snapshot or the history, and
``%%mlxsweep`` sweeps a cell over cache limits in a :class:`~mlxtune.widgets.SweepPanel`.

A thin front end: the limits come from :mod:`mlxtune.memory`, each measured run from
:func:`mlxtune.measure.measure`, and the session's runs live in :mod:`mlxtune.history`. This
module only parses options, compiles the cell the way IPython would (for ``%%mlxsweep``, into a
:class:`CellWorkload`), and displays the result.
Further magics are further methods of :class:`MlxtuneMagics`, using :func:`parse_options`.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import functools
import math
import statistics
import sys
import warnings
from collections.abc import Callable, Iterator
from types import CodeType, TracebackType
from typing import Any

import pandas as pd
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from mlxtune import memory, present, runner
from mlxtune._argtypes import cache_limits, repeats, size, whole_number
from mlxtune._mlx import mx
from mlxtune.history import HISTORY_PARAMS, add_runs, history, next_run
from mlxtune.record import RunRecord, Work, describe_error, error_detail, runs_frame, timelines_frame
from mlxtune.sweep import INTERRUPTED, SweepError, sweep

__all__ = ["CellResult", "CellWorkload", "MlxtuneMagics", "parse_options", "register", "unregister"]

#: Below this wall time, a run that allocated nothing most likely built a lazy graph only.
LAZY_NOTE_SECONDS = 0.01
#: ... and less than this much MLX memory moved (lazy ops keep small constants such as scalars).
LAZY_NOTE_BYTES = 4096
LAZY_NOTE = "nothing was evaluated: MLX is lazy (end the cell with the arrays to evaluate, or call mx.eval)"


# -- option parsing (sizes and counts: mlxtune._argtypes, shared with the command line) -----------


def text_option(text: str) -> str:
    """argparse type for free text (a label): IPython keeps the quotes around a quoted word, so drop them."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def expression_option(text: str) -> str:
    """argparse type for a Python expression, unquoted like text and checked to compile."""
    text = text_option(text)
    try:
        compile(text, "<expression>", "eval")
    except (SyntaxError, ValueError) as exc:
        reason = exc.msg if isinstance(exc, SyntaxError) else str(exc)
        raise argparse.ArgumentTypeError(f"invalid expression {text!r}: {reason}") from None
    return text


def name_option(text: str) -> str:
    """argparse type for a variable name in the user namespace."""
    if not text.isidentifier():
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid Python variable name")
    return text


def parse_options(magic: Callable[..., Any], line: str) -> argparse.Namespace:
    """Parse a magic's line with its ``magic_arguments``; any error is one-line UsageError.

    The same line gives the same options, so parses are remembered (argparse costs up to ~40 us
    a line, a cell magic's budget); each caller gets its own copy to change as it likes. Option
    values are scalars or lists of them, so copying the namespace and its lists is enough (a
    deepcopy cost more than a quarter of what it saved).
    """
    remembered = vars(_parse_options(magic, line))
    return argparse.Namespace(**{k: list(v) if isinstance(v, list) else v for k, v in remembered.items()})


@functools.lru_cache(maxsize=256)
def _parse_options(magic: Callable[..., Any], line: str) -> argparse.Namespace:
    try:
        return parse_argstring(magic, line)
    except UsageError:
        raise
    except (SystemExit, ValueError) as exc:  # argparse exits on --help and on some errors
        raise UsageError(f"%{magic.__name__}: {exc}") from None


# -- running the cell ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CellProgram:
    """A cell compiled as IPython compiles it: magics and shell escapes transformed, and its last
    expression (if any) kept apart so its value can be evaluated inside the measurement."""

    body: CodeType
    last: CodeType | None

    @classmethod
    def compile(cls, shell: Any, cell: str) -> CellProgram:
        source = shell.transform_cell(cell)
        filename = shell.compile.cache(source, _cell_number(shell))
        tree = shell.transform_ast(shell.compile.ast_parse(source, filename=filename))
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = shell.compile(ast.Expression(tree.body.pop().value), filename, "eval")
        return cls(body=shell.compile(tree, filename, "exec"), last=last)

    def run(self, namespace: dict[str, Any]) -> Any:
        __tracebackhide__ = True
        exec(self.body, namespace)
        return eval(self.last, namespace) if self.last is not None else None


def _cell_number(shell: Any) -> int:
    """The number of the cell being run, as its traceback names it ("In[7]"): the number its own code
    was compiled under, found on the stack. (The shell's ``execution_count`` is already the next
    cell's while a cell runs.)"""
    numbers = getattr(shell.compile, "_filename_map", {})
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename in numbers:
            return int(numbers[frame.f_code.co_filename])
        frame = frame.f_back
    return int(shell.execution_count)


def mlx_arrays(value: Any) -> list[Any]:
    """The MLX arrays in ``value``: an array, or arrays inside lists, tuples and dicts (nested
    any depth; a container that holds itself is visited once)."""
    arrays, pending, seen = [], [value], set()
    while pending:
        item = pending.pop()
        if isinstance(item, mx.array):
            arrays.append(item)
        elif isinstance(item, (list, tuple, dict)) and id(item) not in seen:
            seen.add(id(item))
            pending.extend(reversed(list(item.values() if isinstance(item, dict) else item)))
    return arrays


def evaluate_arrays(value: Any) -> int:
    """Evaluate the MLX arrays in ``value`` (see :func:`mlx_arrays`); returns how many there were."""
    arrays = mlx_arrays(value)
    if arrays:
        mx.eval(arrays)
    return len(arrays)


_ONE_RUN = Work(units=1.0, unit="runs")


class CellWorkload:
    """A cell as a sweep workload, for ``%%mlxsweep`` and ``%%mlxmem`` alike: run in the user's
    namespace, the arrays it ends with evaluated (unless ``evaluate=False``).

    Without ``units`` each run counts as one ("runs"); with it, the expression is evaluated in the
    namespace after each run and gives the units done, named after the expression when it is a
    plain name (``--units tokens`` counts "tokens"). ``value`` and ``evaluated`` are the last run's
    value and how many arrays it evaluated. With ``keep_interrupt``, Ctrl-C inside the cell ends the
    run normally and is kept in ``interrupt`` (``%%mlxmem`` records the run, then raises it).

    Sent to another process (an ipyparallel engine: ``%%mlxsweep --isolate``), a cell travels as
    its text and runs there in the engine's own namespace, the one ``%px`` fills.

    ``paired=True`` (``%%mlxsweep --paired``) makes each run of the cell one step of a step
    workload (:mod:`mlxtune.paired`): the sweep switches the limit between blocks of cell runs and
    compares within cycles; one run of the cell is then also a whole run.
    """

    def __init__(self, shell: Any, cell: str, units: str | None = None, *, evaluate: bool = True,
                 keep_interrupt: bool = False, paired: bool = False) -> None:
        self._source = (cell, units, evaluate, paired)
        self._program = CellProgram.compile(shell, cell)
        self._namespace = shell.user_ns
        self._units = compile(units, "<--units>", "eval") if units else None
        self._unit = units if units and units.isidentifier() else ("units" if units else "runs")
        self._evaluate, self._keep_interrupt = evaluate, keep_interrupt
        self.__name__ = "cell"  # a label (--label) names it in plots and reports
        self._first_line = first_line(cell, width=60)
        self.value: Any = None
        self.evaluated = 0
        self.interrupt: KeyboardInterrupt | None = None
        self.unit = self._unit
        if not paired:  # a whole-run workload: see mlxtune.paired.step_source
            self.steps = None

    def __call__(self) -> Work:
        __tracebackhide__ = True
        try:
            self.value = self._program.run(self._namespace)
            self.evaluated = evaluate_arrays(self.value) if self._evaluate else 0
        except KeyboardInterrupt as exc:
            if not self._keep_interrupt:
                raise
            self.interrupt = exc
            return _ONE_RUN
        if self._units is None:
            return _ONE_RUN
        count = eval(self._units, self._namespace)
        if isinstance(count, bool) or not isinstance(count, (int, float)):
            raise TypeError(f"--units must give a number, got {type(count).__name__}")
        return Work(units=float(count), unit=self._unit)

    def steps(self) -> Iterator[float]:
        """The cell again and again, one run a step (``paired=True``)."""
        while True:
            yield self().units

    def describe(self) -> str:
        return f"%%mlxsweep cell: {self._first_line}"

    def __reduce__(self) -> tuple[Any, ...]:
        return _cell_here, self._source


def _cell_here(cell: str, units: str | None, evaluate: bool, paired: bool = False) -> CellWorkload:
    """A cell that came from another process, run in this one's IPython namespace."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        raise RuntimeError("a notebook cell runs only in an IPython process (an ipyparallel engine is one)")
    return CellWorkload(shell, cell, units, evaluate=evaluate, paired=paired)


# -- the result ---------------------------------------------------------------------------------


@dataclasses.dataclass
class CellResult:
    """What ``%%mlxmem`` measured: the runs of the cell (one record each), their context (``cell``
    is the cell's first line), the value of its last expression and the exception that stopped it."""

    records: list[RunRecord]
    label: str = ""
    cell: str = ""
    warmup: int = 0
    timeline: bool = False
    wired_limit: int = 0
    evaluated: int = 0
    value: Any = None
    exception: BaseException | None = None

    @property
    def error(self) -> str:
        """The error that stopped the cell ("" when every run finished)."""
        return next((r.error for r in self.records if r.error), "")

    @property
    def times(self) -> list[float]:
        """Wall time of each measured run, in seconds."""
        return [r.wall_seconds for r in self.records]

    @property
    def seconds(self) -> float:
        """Median wall time of the runs (NaN before any run ended, as after an early Ctrl-C)."""
        return statistics.median(self.times) if self.times else math.nan

    @property
    def peak_increase(self) -> int:
        """How far MLX's memory rose above what it held when the first run started: the largest sampled
        active + cache over the active + cache at the start (the number ``Memory.snapshot()`` and
        ``delta`` are about in mlx-swift)."""
        start = self.records[0].active_before + self.records[0].cache_before
        return max(r.footprint_peak for r in self.records) - start

    def samples(self) -> pd.DataFrame:
        """Memory over time during the measured runs, one row per sample: ``run`` (0 for the first
        measured run), ``seconds`` since that run started, ``active``, ``cache`` and ``process`` bytes."""
        return timelines_frame(self.records)

    @property
    def peak(self) -> int:
        """The largest MLX memory during any run (0 before any run ended)."""
        return max((r.peak_memory for r in self.records), default=0)

    @property
    def active(self) -> tuple[int, int]:
        """MLX active memory before the first run and after the last."""
        return self.records[0].active_before, self.records[-1].active_after

    @property
    def cache(self) -> tuple[int, int]:
        """MLX cache memory before the first run and after the last."""
        return self.records[0].cache_before, self.records[-1].cache_after

    @property
    def note(self) -> str:
        """Says when the cell most likely built a lazy graph and never evaluated it: no arrays were
        evaluated for it, MLX memory moved by less than a page, and the run was quick."""
        lazy = not self.evaluated and all(
            r.peak_memory - r.active_before < LAZY_NOTE_BYTES
            and abs(r.active_after - r.active_before) < LAZY_NOTE_BYTES
            and r.wall_seconds < LAZY_NOTE_SECONDS
            for r in self.records
        )
        return LAZY_NOTE if lazy and not self.error else ""

    def frame(self) -> pd.DataFrame:
        """The runs as rows of the runs frame, like :func:`mlxtune.history`."""
        return runs_frame(self.records, params=HISTORY_PARAMS)

    def __repr__(self) -> str:
        return (
            f"CellResult(label={self.label!r}, runs={len(self.records)}, seconds={self.seconds:.6f}, "
            f"peak={self.peak}, error={self.error!r})"
        )

    def __str__(self) -> str:
        return present.cell_display(self).text()

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))

    def _repr_html_(self) -> str:
        return present.cell_display(self).html()

    def mimebundle(self) -> dict[str, str]:
        """Plain text and HTML at once, for ``display(..., raw=True)``: the magic's own display
        skips IPython's search through a dozen formatters, a good part of its overhead. With
        ``timeline`` the memory-over-time figure comes too (PNG)."""
        shown = present.cell_display(self)
        bundle = {"text/plain": shown.text(), "text/html": shown.html()}
        if self.timeline:
            from mlxtune.plots import cell_timeline, data_uri

            uri = data_uri(cell_timeline(self), "png")
            bundle["text/html"] += f"<img alt='memory over time' style='max-width:100%' src='{uri}'>"
        return bundle


def first_line(cell: str, width: int = 120) -> str:
    """The cell's first non-blank line, cut to ``width`` characters."""
    line = next((s.strip() for s in cell.splitlines() if s.strip()), "")
    return line if len(line) <= width else line[: width - 1] + "…"


# -- the magics ---------------------------------------------------------------------------------


def _usage_name(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Name a method's generated usage after its magic (``%mlxmem``) rather than the method."""

    def name_it(func: Callable[..., Any]) -> Callable[..., Any]:
        func.argcmd_name = name  # type: ignore[attr-defined]
        return func

    return name_it


@magics_class
class MlxtuneMagics(Magics):
    """mlxtune's magics; registered by ``%load_ext mlxtune``."""

    @magic_arguments()
    @argument("--cache-limit", type=size, metavar="SIZE", help="cache limit for this cell, e.g. 1MB")
    @argument("--memory-limit", type=size, metavar="SIZE", help="memory limit for this cell")
    @argument("--wired-limit", type=size, metavar="SIZE", help="wired limit for this cell (Metal)")
    @argument("--clear-cache", action="store_true", help="empty MLX's cache before each run")
    @argument("-r", "--repeat", type=whole_number(1), default=1, metavar="N", help="measured runs (1)")
    @argument("-w", "--warmup", type=whole_number(0), default=0, metavar="N", help="unmeasured runs first")
    @argument("--label", type=text_option, default="", help="a name for this measurement in the history")
    @argument("-o", dest="output", action="store_true", help="return the result object")
    @argument("-v", dest="variable", type=name_option, metavar="NAME", help="store the result object as NAME")
    @argument("-q", dest="quiet", action="store_true", help="do not display the result")
    @argument("--no-eval", action="store_true", help="do not evaluate the arrays the cell ends with")
    @argument("-t", "--timeline", action="store_true",
              help="draw memory over time during the cell (active, cache, process) with the limits")
    @cell_magic
    def mlxmem(self, line: str, cell: str) -> Any:
        """Run the cell and show the MLX memory it used under the limits given.

        MLX is lazy: when the cell ends with an MLX array (or a list, tuple or dict of them) it is
        evaluated inside the measurement, unless --no-eval. The limits given apply to this cell
        only and are restored afterwards, also when the cell raises or is interrupted. Every run
        is kept in ``mlxtune.history()``. Like ``%%time``, the cell's value is the magic's value
        (``Out[]``; a trailing ``;`` keeps it out, as in any cell); ``-o`` returns the measurement instead.
        """
        __tracebackhide__ = True
        options = parse_options(MlxtuneMagics.mlxmem, line)
        workload = CellWorkload(self.shell, cell, evaluate=not options.no_eval, keep_interrupt=True)
        try:
            result = self._measure(workload, options, first_line(cell))
        except runner.BusyError as exc:  # nothing ran and no limit was touched: one line, as for bad options
            raise UsageError(str(exc)) from None
        if options.variable:
            self.shell.user_ns[options.variable] = result
        result.timeline = options.timeline
        if not options.quiet and not options.output and result.records:  # none: Ctrl-C before the first
            display(result.mimebundle(), raw=True)
        if result.exception is not None:
            raise result.exception.with_traceback(_user_frames(result.exception.__traceback__))
        if options.output:
            return result
        # as in any cell, a trailing ";" keeps the value out of Out[] (it was still evaluated, inside)
        return None if cell.rstrip().endswith(";") else result.value

    def _measure(self, cell: CellWorkload, options: argparse.Namespace, cell_line: str) -> CellResult:
        """Run the cell's warm-ups and measured runs through the sweep engine (one limit point, the
        limits given or those in force), stopping at a failure or Ctrl-C; keep every run.

        ``cell_line`` (the cell's first line) names the cell in the history.
        """
        __tracebackhide__ = True
        runner.check_free("%%mlxmem")  # refuse before any limit is read or set (the engine refuses it too)
        params = {"run": next_run(), "label": options.label, "cell": cell_line}
        result = CellResult(records=[], label=options.label, cell=cell_line, warmup=options.warmup)

        def keep(record: RunRecord, _progress: Any) -> None:
            if cell.interrupt is not None:
                record = dataclasses.replace(record, error=describe_error(cell.interrupt),
                                             error_detail=error_detail(cell.interrupt), units=0.0)
            result.records.append(dataclasses.replace(record, params=params))

        grid = None if options.memory_limit is None else {"memory_limit": [options.memory_limit]}
        try:
            with warnings.catch_warnings(), _wired_limit(options.wired_limit) as wired:
                warnings.simplefilter("always")  # a limit's warning shows on every cell that earns it
                result.wired_limit = wired
                swept = sweep(cell, cache_limits=options.cache_limit, grid=grid, repeats=options.repeat,
                              warmup=options.warmup, on_error="raise", clear_cache=options.clear_cache,
                              progress=False, on_run=keep, stop=lambda: cell.interrupt is not None,
                              label=options.label or "cell", holder="%%mlxmem")
            if swept.stop_reason.startswith(INTERRUPTED):  # Ctrl-C between runs: the notebook stops too
                cell.interrupt = cell.interrupt or KeyboardInterrupt()
        except SweepError as exc:  # the run that failed is kept; its exception is the cell's
            result.exception = exc.__cause__
        finally:
            add_runs(result.records)
        result.value, result.evaluated = cell.value, cell.evaluated
        if cell.interrupt is not None:
            result.exception = cell.interrupt
        return result

    @magic_arguments()
    @_usage_name("mlxmem")
    @argument("--history", action="store_true",
              help="every measured cell run of this session, formatted (mlxtune.history(): the frame)")
    @line_magic("mlxmem")
    def mlxmem_line(self, line: str) -> Any:
        """Show MLX's memory now (active, cache, peak, limits, process memory), or --history."""
        options = parse_options(MlxtuneMagics.mlxmem_line, line)
        return present.history_view(history()) if options.history else memory.snapshot()

    @magic_arguments()
    @argument("--cache-limits", type=cache_limits, metavar="SIZES",
              help="comma-separated sizes to sweep, e.g. 0,1MB,16MB,unlimited (default: 0 to unlimited)")
    @argument("-r", "--repeats", type=repeats, default="auto", metavar="N",
              help="runs per limit, or auto: rounds until the answer is decided (auto)")
    @argument("-w", "--warmup", type=whole_number(0), default=1, metavar="N", help="unmeasured runs (1)")
    @argument("--units", type=expression_option, metavar="EXPR",
              help="work done per run, evaluated after it (default: 1 run)")
    @argument("--label", type=text_option, default="", help="a name for the sweep in plots and reports")
    @argument("--wait", action="store_true", help="block until the sweep ends")
    @argument("--isolate", action="store_true",
              help="run the cell in a fresh ipyparallel engine process (its namespace, not this one's)")
    @argument("--paired", action="store_true",
              help="a run of the cell is one step: switch the limit between blocks of cell runs and compare "
              "within each cycle (for a short cell, such as one decode step)")
    @argument("-v", dest="variable", type=name_option, metavar="NAME", help="store the panel as NAME")
    @cell_magic
    def mlxsweep(self, line: str, cell: str) -> None:
        """Sweep the cell over cache limits in a SweepPanel (see ``mlxtune.widgets``).

        The cell runs once per run, in a worker thread, so Stop works while it sweeps; arrays it
        uses from earlier cells must already be evaluated (MLX ties lazy arrays to their thread).
        With ``--paired`` a run of the cell is one step of the paired design (:mod:`mlxtune.paired`):
        ``--repeats`` then counts cycles.
        """
        from mlxtune.widgets import SweepPanel

        options = parse_options(MlxtuneMagics.mlxsweep, line)
        workload = CellWorkload(self.shell, cell, options.units, paired=options.paired)
        panel = SweepPanel(workload, cache_limits=options.cache_limits, repeats=options.repeats,
                           warmup=options.warmup, label=options.label, isolate=options.isolate)
        if options.variable:
            self.shell.user_ns[options.variable] = panel
        display(panel)
        panel.run(wait=options.wait)


def _user_frames(tb: TracebackType | None) -> TracebackType | None:
    """The traceback from the cell's own code on, so errors read as in a plain cell."""
    while tb is not None and tb.tb_frame.f_globals.get("__name__", "").startswith("mlxtune."):
        tb = tb.tb_next
    return tb


@contextlib.contextmanager
def _wired_limit(limit: int | None) -> Iterator[int]:
    """A cell's wired limit (the engine applies the cache and memory limits); yields the one in force."""
    with contextlib.ExitStack() as stack:
        if limit is not None:
            stack.enter_context(memory.wired_limit(limit))
        yield memory.get_wired_limit()


def register(shell: Any) -> None:
    """Register the magics with an IPython shell."""
    shell.register_magics(MlxtuneMagics)


def unregister(shell: Any) -> None:
    """Remove the magics again (IPython has no API for this: drop them from the manager)."""
    manager = shell.magics_manager
    for kind, names in MlxtuneMagics.magics.items():
        for name in names:
            manager.magics[kind].pop(name, None)
    manager.registry.pop(MlxtuneMagics.__name__, None)
