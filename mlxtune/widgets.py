"""``SweepPanel``: a cache-limit sweep driven from sliders and buttons in a notebook.

A thin front end over :func:`mlxtune.sweep.sweep`: it measures nothing itself. It picks the limits
(a range slider over a log-spaced ladder of sizes and a number of points), starts the sweep, shows
each run as it lands (progress, trade-off plot, summary table), lets you stop it, scrub through
the measured limits afterwards and export reports.

Threads, and what MLX allows across them (MLX's changelog and issues, and tried on MLX 0.32.4 CPU):

* Since MLX 0.31.2 every thread gets its own default stream, and a stream's command encoder lives
  in the thread that created it: first on Metal and CUDA, and on the CPU backend too (tried here).
  A *lazy* array recorded on one thread and evaluated on another fails with "There is no
  Stream(cpu, 0) in current thread" ("gpu" on Metal and CUDA), in either direction.
* *Evaluated* arrays (model weights after ``mlx_lm.load``, anything passed through ``mx.eval``)
  carry no graph and can be computed with on any thread; arrays a worker evaluated can be used by
  the kernel's thread afterwards. mlx-lm generates on ``mx.new_thread_local_stream``, so it works
  from a worker thread; ``mx.new_thread_unsafe_stream`` shares one stream across threads, with the
  locking left to the caller (not needed here).
* Two threads evaluating on one stream at once is not supported, and even on separate streams the
  cache and memory limits are process-wide, so concurrent work would distort what a sweep measures.

So the panel calls :func:`mlxtune.sweep.sweep` from a thread of its own (the kernel's thread stays
free to deliver the Stop click); the engine runs every MLX call of that sweep on mlxtune's one
worker thread (:mod:`mlxtune.runner`, which also says why that thread never ends) and lets one
sweep or measured cell run at a time in the whole process. The panel never touches MLX from the
kernel's thread while it runs. A workload must not capture lazy arrays made in a notebook cell:
evaluate them first (``mx.eval``). The panel says so when a run fails with the cross-thread error.
"""

from __future__ import annotations

import datetime
import html
import os
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from mlxtune import present, runner, view
from mlxtune.plots import data_uri, figure_bytes
from mlxtune.present import status_text
from mlxtune.report import summary_html
from mlxtune.units import parse_size, parse_sizes

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from mlxtune.record import RunRecord
    from mlxtune.result import SweepResult
    from mlxtune.sweep import SweepProgress

__all__ = ["LADDER", "SweepPanel", "spread"]

#: Rounds the Repeats box offers when the panel starts adaptive (``repeats="auto"``).
_DEFAULT_ROUNDS = 10

#: The sizes the range slider offers: 0, then powers of four from 256 KB, then no limit.
LADDER: tuple[int, ...] = tuple(
    parse_size(s) for s in ("0", "256KB", "1MB", "4MB", "16MB", "64MB", "256MB", "1GB", "4GB", "unlimited")
)

#: A redraw waits this many times its own duration, so drawing takes at most 1/(1+4) of a sweep.
_DRAW_SHARE = 4.0

_THREAD_HINT = (
    "A run used a lazy MLX array made on another thread: evaluate it (mx.eval) before the sweep, "
    "or build it inside the workload."
)


def spread(values: Sequence[int], points: int) -> list[int]:
    """``points`` of ``values`` spread evenly by position, always keeping both ends."""
    if not values:
        raise ValueError("no cache limits to choose from")
    if points < 1:
        raise ValueError(f"points must be at least 1, got {points}")
    if points >= len(values):
        return list(values)
    if points == 1:
        return [values[0]]
    last = len(values) - 1
    return [values[i] for i in sorted({round(k * last / (points - 1)) for k in range(points)})]


class SweepPanel:
    """Sliders, buttons, a live plot and a table around :func:`mlxtune.sweep.sweep`.

    ``display(panel)`` shows it; :meth:`run` and :meth:`stop` do what the buttons do, and
    :meth:`wait` blocks until the sweep in progress ends (for scripts and tests). ``result`` is the
    :class:`~mlxtune.result.SweepResult` measured so far (None before the first run); ``figure``
    is the Figure last drawn; ``error`` the last error shown (``""`` when none).

    ``cache_limits`` replaces the ladder the range slider offers; ``sweep_options`` (warmup,
    timeout, seed, ...) go to ``sweep`` unchanged. While a sweep runs, the plot and table are
    redrawn at most every ``refresh`` seconds and at most a fifth of the time (a redraw that took
    0.2 s waits 0.8 s), so drawing never dominates a long sweep of short runs; ``refresh=0``
    redraws after every run. ``isolate`` (a checkbox) runs each sweep in a fresh ipyparallel engine
    process (``sweep(..., isolate=True)``), so this kernel's memory stays out of the numbers.
    """

    def __init__(
        self,
        workload: Callable[..., Any],
        *,
        cache_limits: Sequence[int | str] | str | None = None,
        repeats: int | str = "auto",
        points: int | None = None,
        label: str | None = None,
        out_dir: str | os.PathLike[str] = "mlxtune-out",
        refresh: float = 0.5,
        isolate: bool = False,
        **sweep_options: Any,
    ) -> None:
        if not callable(workload):
            raise TypeError(f"workload must be callable, not {type(workload).__name__}")
        ladder = sorted(parse_sizes(cache_limits)) if cache_limits is not None else list(LADDER)
        self._workload = workload
        self._label = label or getattr(workload, "__name__", "sweep")
        self._out_dir = Path(out_dir)
        self._refresh = refresh
        self._options = sweep_options
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy = False  # from Run until the sweep ends; cleared before the outcome is drawn
        self._scrub_ready = False
        self._stem = ""  # the export files' name, set when a sweep starts
        self._next_draw = 0.0
        self._progress: SweepProgress | None = None
        self._result: SweepResult | None = None
        self.figure: Figure | None = None
        self.error = ""

        adaptive = repeats == "auto"
        if not adaptive and (isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1):
            raise ValueError(f'repeats must be a whole number >= 1 or "auto", not {repeats!r}')
        wide = widgets.Layout(width="auto", align_self="stretch", max_width="900px")  # fills, margins in
        labels = {"description_width": "7em"}
        options = [(view.limit_text(v), v) for v in ladder]
        self.span = widgets.SelectionRangeSlider(
            options=options, index=(0, len(ladder) - 1), description="Cache limits",
            continuous_update=False, layout=wide, style=labels,
        )
        self.points = widgets.BoundedIntText(
            value=min(points or len(ladder), len(ladder)), min=1, max=len(ladder), description="Points",
            layout=widgets.Layout(width="11em"), style=labels,
        )
        self.repeats = widgets.BoundedIntText(
            value=_DEFAULT_ROUNDS if adaptive else repeats, min=1, max=1000, description="Repeats",
            layout=widgets.Layout(width="11em"), style=labels,
        )
        self.adaptive = widgets.Checkbox(value=adaptive, description="until decided (at most Repeats rounds)",
                                         indent=False, layout=widgets.Layout(width="auto"))
        self.isolate = widgets.Checkbox(value=isolate, description="in a clean process (ipyparallel)",
                                        indent=False, layout=widgets.Layout(width="auto"))
        self.planned = widgets.HTML()
        self.run_button = widgets.Button(description="Run", button_style="primary", icon="play")
        self.stop_button = widgets.Button(
            description="Stop", button_style="warning", icon="stop", disabled=True
        )
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="Runs", layout=wide,
                                            style=labels)
        self.status = widgets.HTML(layout=wide)
        self.plot = _figure_image("svg+xml")  # its labels stay text a page can read
        self.plot.add_class("mlxtune-tradeoff")  # a name for the page: the timeline is an image too
        self.table = widgets.HTML(layout=widgets.Layout(max_width="100%", overflow="auto"))
        self.timeline = _figure_image()
        self.timeline.add_class("mlxtune-timeline")
        self.scrub = widgets.SelectionSlider(
            options=[("—", -1)], description="Inspect", disabled=True, continuous_update=False,
            layout=wide, style=labels,
        )
        self.details = widgets.HTML()
        self.export_buttons = {
            kind: widgets.Button(description=f"Export {kind.upper()}", icon="download", disabled=True)
            for kind in ("html", "csv", "json")
        }
        self.links = widgets.HTML()
        self.errors = widgets.HTML()

        self.span.observe(self._guard(self._on_span), names="index")
        for control in (self.points, self.repeats, self.adaptive):
            control.observe(self._guard(self._show_plan), names="value")
        self.run_button.on_click(self._guard(lambda _: self.run()))
        self.stop_button.on_click(self._guard(lambda _: self.stop()))
        self.scrub.observe(self._guard(self._on_scrub), names="value")
        for kind, button in self.export_buttons.items():
            button.on_click(self._guard(lambda _, kind=kind: self.export(kind)))
        self._show_plan()

        wrap = widgets.Layout(flex_flow="row wrap", align_items="center", width="100%")
        # one screen: the controls, the answer, the trade-off beside its table; the rest folded below
        self.more = widgets.Accordion(children=[widgets.VBox([self.timeline, self.scrub, self.details])],
                                      titles=("Details: memory over time, one limit at a time",),
                                      selected_index=None, layout=widgets.Layout(width="100%"))
        self.widget = widgets.VBox([
            self.span,
            widgets.HBox([self.points, self.repeats, self.adaptive, self.isolate, self.run_button,
                          self.stop_button], layout=wrap),
            self.planned,
            self.progress,
            self.status,
            self.errors,
            widgets.HBox([self.plot, self.table], layout=widgets.Layout(
                flex_flow="row wrap", align_items="flex-start", width="100%", grid_gap="8px")),
            self.more,
            widgets.HBox(list(self.export_buttons.values()), layout=wrap),
            self.links,
        ], layout=widgets.Layout(width="100%"))
        self._snapshot: Any = None  # the display that keeps a static view in the saved notebook

    # -- what the panel would sweep ------------------------------------------------------------------
    @property
    def cache_limits(self) -> list[int]:
        """The limits the next run sweeps: ``points`` of those the range slider spans."""
        lo, hi = self.span.index
        return spread(list(self.span.options[i][1] for i in range(lo, hi + 1)), self.points.value)

    @property
    def result(self) -> SweepResult | None:
        """The sweep's result: final once it ended, else built from the runs measured so far."""
        if self._result is not None or self._progress is None:
            return self._result
        return self._progress.result()

    @property
    def running(self) -> bool:
        """Whether a sweep of this panel is measuring (Run pressed, sweep not ended)."""
        return self._busy

    def _on_span(self, change: dict[str, Any]) -> None:
        old_lo, old_hi = change["old"] if change.get("old") else (0, 0)
        lo, hi = self.span.index
        size = hi - lo + 1
        followed = self.points.value >= old_hi - old_lo + 1
        self.points.max = size
        if followed:
            self.points.value = size
        self._show_plan()

    @property
    def planned_runs(self) -> int:
        """Runs the next sweep plans: every limit each round (at most, when it stops once decided)."""
        return len(self.cache_limits) * self.repeats.value

    def _show_plan(self, _change: object = None) -> None:
        names = ", ".join(view.limit_text(v) for v in self.cache_limits)
        rounds = self.repeats.value
        runs = self.planned_runs
        how = (f"rounds until the answer is decided, at most {rounds}: up to {runs} runs"
               if self.adaptive.value else f"{view.count_text(rounds, 'round')}: {runs} runs")
        self.planned.value = f"<span class='mlxtune-plan'>Sweeps {html.escape(names)} in {how}</span>"

    # -- running ------------------------------------------------------------------------------------
    def run(self, *, wait: bool = False, timeout: float | None = None) -> SweepPanel:
        """Start a sweep of :attr:`cache_limits` in a worker thread; ``wait=True`` blocks until it ends."""
        if self.running or (self._thread is not None and self._thread.is_alive()):
            raise RuntimeError("a sweep is already running in this panel: Stop it or wait for it")
        limits, rounds = self.cache_limits, self.repeats.value
        adaptive = ({"repeats": "auto", "max_runs": self.planned_runs} if self.adaptive.value
                    else {"repeats": rounds})
        runner.check_free("the panel's sweep")  # the engine refuses it too; the controls stay as they are
        self._stop_event.clear()
        self._next_draw, self._progress, self._result, self.error = 0.0, None, None, ""
        self._stem = f"{_slug(self._label)}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
        self._scrub_ready = False
        self.errors.value = self.links.value = self.details.value = ""
        self.timeline.value = b""  # hidden while empty (_figure_image), as is the plot before a first run
        if self._snapshot is not None:  # the last sweep's snapshot goes; this sweep leaves its own
            from IPython.display import HTML

            self._snapshot.update(HTML(""))
        self.progress.value, self.progress.max = 0, self.planned_runs
        self.progress.bar_style = ""
        self._busy = True
        self._set_running(True)
        self.plot.value, self.table.value = b"", ""  # the last sweep's view goes: nothing stale shows
        plan = f"{len(limits)} limits, {self.planned.value.split(' in ', 1)[-1]}"
        self.status.value = (f"starting a clean Python process (an ipyparallel engine) and loading the "
                             f"workload there, which takes some seconds; then {plan}" if self.isolate.value
                             else f"starting: {plan}")
        self._thread = threading.Thread(
            target=self._sweep, args=(limits, adaptive), name="mlxtune-sweep", daemon=True
        )
        self._thread.start()
        if wait:
            self.wait(timeout)
        return self

    def stop(self) -> None:
        """Ask the sweep to stop after the run in progress; what was measured is kept."""
        if self.running:
            self._stop_event.set()
            self.status.value = "stopping after the current run..."

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the sweep in progress ends; False if ``timeout`` seconds passed first."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return thread is None or not thread.is_alive()

    def close(self) -> None:
        """Stop any sweep, wait for it, and close every widget of the panel."""
        self.stop()
        self.wait()
        self.figure = None
        _close_tree(self.widget)

    def _sweep(self, limits: list[int], rounds: dict[str, Any]) -> None:
        """The panel's thread: it calls the sweep, which runs MLX on mlxtune's worker thread."""
        from mlxtune.sweep import sweep

        try:
            options = {"label": self._label, **self._options, **rounds}
            if self.isolate.value:
                options["isolate"] = True
            self._result = sweep(
                self._workload, cache_limits=limits, progress=False, on_run=self._on_run,
                stop=self._stop_event, **options,
            )
        except Exception as exc:  # shown in the panel, which stays usable; measured runs are kept
            self._result = getattr(exc, "result", None)  # SweepError carries the runs so far
            self._show_error(exc)
        finally:
            self._busy = False  # measuring is over: what is drawn now is the final answer
            try:
                self._finish()
            except Exception as exc:  # e.g. a figure that cannot be drawn: the panel stays usable
                self._show_error(exc)
            finally:  # the outcome is drawn; only now do the controls come back
                self._set_running(False)

    def _on_run(self, record: RunRecord, progress: SweepProgress) -> None:
        """Called by the sweep after each run, in the worker thread."""
        self._progress = progress
        self.progress.max = progress.planned
        self.progress.value = progress.done
        if time.monotonic() >= self._next_draw:  # the line and the table change together, never apart
            state = f"failed: {html.escape(record.error)}" if record.error else f"{record.wall_seconds:.3g} s"
            what = f"block of cycle {record.repeat + 1}" if record.block else "run"
            self._draw()
            self.status.value = (
                f"{progress.done} of {progress.planned} measured · last: {what} at cache limit "
                f"<b>{view.limit_text(record.cache_limit)}</b>, {state}"
            )

    def _finish(self) -> None:
        """Draw the outcome: plot and table (the recommended limit highlighted), status, scrubber."""
        result = self.result
        if result is None:
            self.progress.bar_style = "danger"
            return
        if result.complete:  # an adaptive sweep that stopped early is finished: a full bar
            self.progress.max = self.progress.value
        self.progress.bar_style = "success" if result.complete and not result.failed_runs else "warning"
        self._offer_scrub(result)  # draws the plot and table once, the inspected limit highlighted
        if not result.timelines.empty:  # memory during a typical run at each limit: the cache filling
            self.timeline.value = figure_bytes(result.plot("timeline"), "png", dpi=90)
        self.status.value = self._outcome(result)
        self._leave_snapshot(result)

    def _outcome(self, result: SweepResult) -> str:
        """The answer first (the headline in bold, then why), then how the sweep ended and what it
        compared, folded."""
        status = present.status_text(result)
        parts = [status]
        if result.complete and result.stop_reason:  # an adaptive sweep: where it stopped and why
            parts[0] += f" ({result.stop_reason})"
        parts.append(present.design_text(result))
        if result.failed_runs:
            first = result.first_error
            parts.append(f"{result.failed_runs} failed: {first}")
            if "in current thread" in first:
                parts.append(_THREAD_HINT)
            self.errors.value += _error_box(" · ".join(parts[1:]))
        try:
            answer = f"<b>{html.escape(view.headline(result.decision(), result.unit))}</b>"
            parts.insert(0, result.recommend().reason)
        except Exception as exc:  # e.g. every run failed: nothing to recommend
            answer = f"<b>No recommendation</b> ({html.escape(type(exc).__name__)}: {html.escape(str(exc))})"
        how = "<br>".join(html.escape(p) for p in parts)
        return (f"<div class='mlxtune-answer'>{answer}</div><details class='mlxtune-how'><summary>why, and "
                f"how it was measured: {html.escape(status)}</summary>{how}</details>")

    def _set_running(self, running: bool) -> None:
        self.run_button.disabled = running
        self.stop_button.disabled = not running
        for control in (self.span, self.points, self.repeats, self.adaptive, self.isolate):
            control.disabled = running
        nothing_to_export = running or self.result is None
        for button in self.export_buttons.values():
            button.disabled = nothing_to_export
        self.scrub.disabled = running or not self._scrub_ready

    # -- showing results ----------------------------------------------------------------------------
    def _draw(self, highlight: int | None = None) -> None:
        """Redraw the trade-off plot and the summary table from :attr:`result`."""
        started = time.monotonic()
        result = self.result
        if result is None or not len(result.speed_rows):
            return
        try:
            figure = result.plot(kind="tradeoff", highlight=highlight)
            self.plot.value = figure_bytes(figure, "svg", text=True)
            self.figure = figure
            paired = result.design == "paired"
            counted = f"{len(result.blocks)} blocks" if paired else f"{len(result.runs)} runs"
            caption = f"after {counted}: the answer may still change" if self.running else ""
            self.table.value = summary_html(result, caption=caption)
        except Exception as exc:  # a drawing problem must not end the sweep
            self._show_error(exc)
        finished = time.monotonic()
        if self._refresh > 0:
            self._next_draw = finished + max(self._refresh, _DRAW_SHARE * (finished - started))

    def _offer_scrub(self, result: SweepResult) -> None:
        """Let the second slider step through the measured limits, starting at the recommended one,
        which is drawn highlighted with its details."""
        measured = sorted({int(v) for v in result.speed_rows["cache_limit"]})
        if not measured:
            return
        try:
            start = result.recommend().cache_limit
        except Exception:  # nothing to recommend (every run failed): start at the smallest
            start = None
        self._scrub_ready = False
        self.scrub.options = [(view.limit_text(v), v) for v in measured]
        self.scrub.value = start if start in measured else measured[0]
        self._inspect(self.scrub.value)
        self._scrub_ready = True

    def _on_scrub(self, change: dict[str, Any]) -> None:
        if self._scrub_ready and not self.running and change["new"] is not None:
            self._inspect(change["new"])

    def _inspect(self, limit: int) -> None:
        """Draw the plot with ``limit`` highlighted, and its details."""
        if self.result is not None:
            self._draw(highlight=limit)
            self.details.value = _details_html(self.result, limit)

    # -- files --------------------------------------------------------------------------------------
    def export(self, kind: str) -> Path:
        """Write the result as ``html``, ``csv`` or ``json`` into the output folder; link it below.

        The files of one sweep share a name: the label and the time the sweep started.
        """
        writers = {"html": "to_html", "csv": "to_csv", "json": "to_json"}
        if kind not in writers:
            raise ValueError(f"unknown export kind {kind!r}: expected one of html, csv, json")
        if self.result is None:
            raise RuntimeError("nothing to export yet: run a sweep first")
        self._out_dir.mkdir(parents=True, exist_ok=True)
        path = self._out_dir / f"{self._stem}.{kind}"
        written = Path(getattr(self.result, writers[kind])(str(path)))
        self.links.value += _link_html(written)
        return written

    # -- errors -------------------------------------------------------------------------------------
    def _guard(self, handler: Callable[..., None]) -> Callable[..., None]:
        """Wrap a widget callback so its exceptions show in the panel (ipywidgets would hide them)."""

        def guarded(*args: Any) -> None:
            try:
                handler(*args)
            except Exception as exc:  # shown, and the panel stays usable
                self._show_error(exc)

        return guarded

    def _show_error(self, exc: BaseException) -> None:
        self.error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self.errors.value = _error_box(self.error, detail)

    # -- display ------------------------------------------------------------------------------------
    def _ipython_display_(self) -> None:
        """Show the panel, and below it the place its static snapshot goes when a sweep ends.

        Widgets are live views: a saved notebook reopened without the kernel would show
        ``VBox(children=...``. So each finished sweep also updates a plain HTML display (figure,
        table, recommendation), which the notebook keeps.
        """
        from IPython.display import HTML, display

        display(self.widget)
        self._snapshot = display(HTML(""), display_id=True)

    def _leave_snapshot(self, result: SweepResult) -> None:
        if self._snapshot is None or self.figure is None:
            return
        from IPython.display import HTML

        self._snapshot.update(HTML(
            "<details class='mlxtune-snapshot'><summary>Snapshot of the last sweep (kept in the saved "
            f"notebook): {html.escape(status_text(result))}</summary>"
            f"<img alt='trade-off figure' style='max-width:100%' src='{data_uri(self.figure, 'png')}'>"
            f"{summary_html(result)}</details>"
        ))

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        state = "running" if self.running else "idle"
        limits = [view.limit_text(v) for v in self.cache_limits]
        return f"SweepPanel({self._label!r}, {state}, limits={limits})"


def _details_html(result: SweepResult, limit: int) -> str:
    """One limit's row of the summary, a line each (:func:`mlxtune.present.limit_details`)."""
    title = f"<b>cache limit {html.escape(view.limit_text(limit))}</b>"
    return title + present.pairs_html(present.limit_details(result, limit), css="mlxtune-details")


def _figure_image(fmt: str = "png") -> widgets.Image:
    """A figure's place in the panel (``fmt``: png, or svg+xml), hidden while it holds no image (an empty
    image shows as broken)."""
    layout = widgets.Layout(max_width="100%", width="520px", display="none")
    image = widgets.Image(format=fmt, layout=layout)

    def shown(change: dict[str, Any]) -> None:
        image.layout.display = None if change["new"] else "none"

    image.observe(shown, names="value")
    return image


def _error_box(message: str, detail: str = "") -> str:
    more = f"<details><summary>traceback</summary><pre>{html.escape(detail)}</pre></details>" * bool(detail)
    return (
        "<div class='mlxtune-error' style='color:#a00;white-space:pre-wrap'>"
        f"{html.escape(message)}{more}</div>"
    )


def _link_html(path: Path) -> str:
    try:
        shown = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        shown = str(path)
    href = html.escape(urllib.parse.quote(shown.replace(os.sep, "/")))
    full = html.escape(str(path.resolve()))  # shown on hover: the link itself stays one line
    return f"<div>wrote <a href='{href}' target='_blank' title='{full}'>{html.escape(shown)}</a></div>"


def _slug(text: str) -> str:
    kept = "".join(c if c.isalnum() or c in "-_" else "-" for c in text).strip("-")
    return kept[:60] or "sweep"


def _close_tree(widget: widgets.Widget) -> None:
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()
