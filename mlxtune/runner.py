"""Where MLX work runs, and the rule that only one measurement runs at a time in a process.

Two facts about MLX shape this module (seen on MLX 0.32 CPU; the thread-local streams are the same
on Metal and CUDA since 0.31.2):

* Every thread gets its own default stream, and a lazy array can only be evaluated on the thread
  that recorded it. So all MLX work of one sweep (factory, setup, warm-up, runs, teardown) must
  happen on one thread.
* A thread that touched MLX tears its stream down when it ends, *after* ``Thread.join`` has
  returned. If the process exits during that teardown, the C++ runtime aborts ("terminate called
  without an active exception", exit code 134). A process that starts a thread per sweep and
  exits soon after therefore aborts now and then.

So work that cannot run on the calling thread goes to :func:`worker`: one daemon thread per
process, started once and never ended, that runs one call at a time. A daemon thread that is
idle at exit is frozen, not torn down, so exiting never races it.

One that is busy inside MLX at exit would abort the process too (a run abandoned after its
timeout): when its evaluation returns after the interpreter began to finalize, Python ends the
thread (``pthread_exit``) from inside the binding's noexcept GIL guard, and the C++ runtime calls
``terminate`` (exit code 134, every time with short evaluations in a loop). So at exit the worker
first waits, saying so, for such a call to end and for the thread to be idle again; Ctrl-C there
exits at once with 130, and a call that outlasts :data:`EXIT_WAIT` seconds ends the process with 1.

Limits (cache, memory, wired) are process-wide, so two measurements at once would change each
other's limits and restore each other's old values. :func:`exclusive` lets one measurement (a
sweep, a measured cell) hold the process; another one is refused at once with :class:`BusyError`,
which says who holds it.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "MAX_TIMEOUT", "Abandoned", "BusyError", "Inline", "Late", "Worker", "check_free", "check_idle",
    "exclusive", "worker",
]


class BusyError(RuntimeError):
    """Another sweep or measured cell holds this process; nothing was changed or measured."""


class Abandoned(Exception):
    """A call still running after its timeout and grace period: it was left to the worker thread."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds


class Late(Exception):
    """A call that finished after its timeout but within the grace period; ``value`` is its result."""

    def __init__(self, value: Any, seconds: float) -> None:
        super().__init__(seconds)
        self.value, self.seconds = value, seconds


#: The longest timeout a call may be given: waits much longer overflow the platform's timers (inf does).
MAX_TIMEOUT = 86_400.0
#: How long exiting waits for a call abandoned after its timeout to end (module docstring).
EXIT_WAIT = 600.0

_Task = tuple[Callable[[], Any], concurrent.futures.Future]


class Inline:
    """Runs calls on the calling thread; a ``timeout`` cannot be enforced there and is not accepted."""

    def call(self, fn: Callable[[], Any], timeout: float | None = None) -> Any:
        if timeout is not None:
            raise ValueError("the calling thread cannot enforce a timeout: use worker()")
        return fn()

    @property
    def abandoned(self) -> bool:
        return False


class Worker:
    """The process's one MLX worker thread: calls run on it one at a time, in order.

    :meth:`call` waits for a call's result; past ``timeout`` it waits a grace period of ``grace``
    seconds more, and then gives up on it (:class:`Abandoned`): the call goes on in the worker,
    which takes nothing else until it ends (see :attr:`abandoned`).
    """

    def __init__(self) -> None:
        self._tasks: queue.SimpleQueue[_Task] = queue.SimpleQueue()
        self._left: concurrent.futures.Future | None = None
        self._idle = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mlxtune-worker", daemon=True)
        self._thread.start()
        atexit.register(self._finish_at_exit)

    def _loop(self) -> None:  # never returns: see the module docstring
        while True:
            self._idle.set()
            fn, future = self._tasks.get()
            self._idle.clear()
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the waiting thread, Ctrl-C too
                future.set_exception(exc)
            del fn, future  # drop the last call's arrays before waiting for the next one

    def _finish_at_exit(self) -> None:
        """Wait for a call still running at exit to end, so the thread is idle when Python finalizes."""
        if self._idle.is_set():
            return
        try:  # said inside: a Ctrl-C that follows the words must find the handler in place
            print("mlxtune: a run abandoned after its timeout is still running, and MLX cannot stop it "
                  "midway; waiting for it to end before exiting (Ctrl-C exits now)",
                  file=sys.stderr, flush=True)
            ended = self._idle.wait(EXIT_WAIT)
        except KeyboardInterrupt:
            _exit_now(130)
        if not ended:
            print(f"mlxtune: the abandoned run did not end within {EXIT_WAIT:.0f} s; exiting with code 1",
                  file=sys.stderr, flush=True)
            _exit_now(1)

    @property
    def abandoned(self) -> bool:
        """Whether a call given up on after its timeout is still running."""
        return self._left is not None and not self._left.done()

    def call(self, fn: Callable[[], Any], timeout: float | None = None, grace: float | None = None) -> Any:
        """``fn()`` on the worker. Past ``timeout``: :class:`Late` if it ends within ``grace`` (default:
        as long as the timeout) more seconds, else :class:`Abandoned`. Ctrl-C while waiting gives
        the call the grace period to end before the interrupt goes on."""
        check_idle()
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._tasks.put((fn, future))
        started = time.perf_counter()
        grace = timeout if grace is None else grace
        try:
            try:
                return future.result(timeout)
            except concurrent.futures.TimeoutError:
                pass
            try:
                value = future.result(grace)
            except concurrent.futures.TimeoutError:
                self._left = future
                raise Abandoned(time.perf_counter() - started) from None
            raise Late(value, time.perf_counter() - started)
        except KeyboardInterrupt:
            # whatever the call raises meanwhile, or a second Ctrl-C, does not replace this interrupt
            with contextlib.suppress(BaseException):
                future.result(grace)
            if not future.done():
                self._left = future
            raise


def _exit_now(code: int) -> None:
    """End the process at once, skipping the finalization that would abort under a busy MLX thread."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


_worker: Worker | None = None
_worker_lock = threading.Lock()


def worker() -> Worker:
    """The process's MLX worker thread, started on first use."""
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = Worker()
        return _worker


def check_idle() -> None:
    """RuntimeError while a call abandoned after its timeout is still running in the worker.

    MLX cannot evaluate on two threads at once, so nothing may touch it until that call ends.
    """
    if _worker is not None and _worker.abandoned:
        raise RuntimeError(
            "a run abandoned after its timeout by an earlier sweep is still running in this process, and "
            "MLX cannot evaluate on two threads at once: wait for it to end or restart the process"
        )


# -- one measurement at a time ------------------------------------------------------------------

_holding = threading.Lock()
_holder: tuple[str, float] | None = None


def check_free(what: str) -> None:
    """Raise :class:`BusyError` when another measurement holds the process (as :func:`exclusive` would),
    so a front end can refuse before it changes anything of its own."""
    if _holder is not None:
        raise _busy(what)


def _busy(what: str) -> BusyError:
    current = _holder
    since = f", for {time.monotonic() - current[1]:.0f} s" if current else ""
    name = current[0] if current else "another measurement"
    return BusyError(f"{what} cannot start: {name} is measuring in this process{since}. Limits are "
                     "process-wide, so mlxtune measures one sweep or cell at a time: wait for it to end or "
                     "stop it")


@contextlib.contextmanager
def exclusive(what: str) -> Iterator[None]:
    """Hold the process for one measurement named ``what``; :class:`BusyError` if another holds it.

    Checked before anything is changed, so the refused caller leaves every limit as it was.
    """
    global _holder
    if not _holding.acquire(blocking=False):
        raise _busy(what)
    try:
        _holder = (what, time.monotonic())
        check_idle()
        yield
    finally:
        _holder = None
        _holding.release()
