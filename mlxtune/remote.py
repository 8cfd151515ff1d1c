"""Sweeps in other processes: ipyparallel engines, on this machine or on others.

A sweep in the notebook's own process measures that process too: the models, caches and threads it
already holds. ``sweep(..., isolate=True)`` runs it in a fresh engine instead (:func:`isolated`), and
:mod:`mlxtune.fleet` runs one on many engines (:func:`run_jobs`). What travels:

- to an engine, the workload as bytes (:func:`pack`: a name the engine rebuilds, or a callable
  pickled with cloudpickle, so functions defined in a notebook travel too) and the sweep's plain
  arguments;
- back, each run as it ends (on the engine's data channel, so progress bars and ``on_run`` work as
  in-process), and at the end the result as its JSON document (:func:`mlxtune.store.to_document`),
  the form that reads the same whatever library versions the other host has.

Ctrl-C or ``stop`` interrupts the engines (SIGINT through ipyparallel), which end their sweeps as
Ctrl-C does in-process, with the runs measured so far, and send them back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import pickle
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import Any

from mlxtune.paired import step_source
from mlxtune.record import RunRecord, describe_error
from mlxtune.result import SweepResult

__all__ = [
    "ACCEPTED", "Job", "RemoteError", "Settings", "engines_of", "isolated", "pack", "partial",
    "require_ipyparallel", "run_jobs",
]

#: What another process can rebuild, as error messages say it.
ACCEPTED = ("a model folder or hub id, an importable 'module:function' factory, or a picklable callable "
            "(a function or object defined in a module or in the notebook)")

#: Seconds between looks at the engines (progress, stop, results).
POLL_SECONDS = 0.1
#: Seconds an interrupted engine gets to send back what it measured.
GRACE_SECONDS = 30.0


class RemoteError(RuntimeError):
    """A sweep could not run in another process; the message says why in one line."""


def require_ipyparallel() -> ModuleType:
    """The ipyparallel module, or an ImportError saying how to install it."""
    try:
        import ipyparallel
    except ImportError:
        raise ImportError("sweeps in other processes need ipyparallel and cloudpickle: "
                          "pip install 'mlx-memtune[fleet]'") from None
    return ipyparallel


def pack(workload: object) -> bytes:
    """The workload as bytes another process rebuilds, or a ValueError saying what is accepted.

    A name (model folder, hub id, ``module:function``) travels as text and is built where it runs,
    a folder as an absolute path; a callable travels pickled by cloudpickle.
    """
    from mlxtune.workloads.named import is_factory_name, model_reference

    if isinstance(workload, (str, os.PathLike)):
        text = os.fspath(workload)
        return pickle.dumps(text if is_factory_name(text) else model_reference(text))
    if not callable(workload) and step_source(workload) is None:
        raise ValueError(f"a workload for another process must be {ACCEPTED}, not {type(workload).__name__}")
    import cloudpickle

    try:
        return cloudpickle.dumps(workload)
    except Exception as exc:
        name = getattr(workload, "__name__", type(workload).__name__)
        raise ValueError(f"cannot send workload {name!r} to another process ({describe_error(exc)}); "
                         f"give {ACCEPTED}") from None


@dataclasses.dataclass
class Job:
    """One sweep on one engine: what came back so far, and how it ended."""

    name: str
    engine: int
    future: Any = None
    records: list[RunRecord] = dataclasses.field(default_factory=list)
    bar: Any = None
    result: SweepResult | None = None
    error: str = ""  # why the engine gave no result (lost, or an error outside the sweep)
    sweep_error: str = ""  # the sweep's own SweepError, for on_error="raise"

    @property
    def running(self) -> bool:
        return self.future is not None and self.result is None and not self.error


@dataclasses.dataclass(frozen=True)
class Settings:
    """The sweep as every engine runs it: ``entry`` (a module-level function the engine calls with the
    ``packed`` workload (:func:`pack`) and ``arguments``, returning ``{"document": JSON text, "error":
    text}`` and publishing each run as ``run<N>``), and what the caller's side needs to follow it."""

    entry: Callable[[bytes, dict[str, Any]], dict[str, Any]]
    packed: bytes
    arguments: dict[str, Any]
    params: list[str]
    planned_runs: int
    label: str


#: Called with the job and each run as it comes back, in order.
OnRecord = Callable[[Job, RunRecord], Any]


def run_jobs(client: Any, groups: Sequence[Sequence[Job]], settings: Settings, *,
             progress: bool, on_record: OnRecord | None = None,
             stop: Callable[[], bool] = lambda: False) -> str:
    """Run each group's jobs one after another, all groups at once; fill in each job's result or error.

    Returns "" when every job ran, else why the rest did not (Ctrl-C, ``stop``): the jobs that
    were running then end as an interrupted sweep ends, with their runs; the ones not yet started
    say so in their ``error``.
    """
    from tqdm.auto import tqdm

    queues = [list(group) for group in groups]
    for position, job in enumerate(job for group in groups for job in group):
        job.bar = tqdm(total=settings.planned_runs, desc=job.name, position=position, leave=True,
                       disable=not progress)
    reason = ""
    try:
        while True:
            for group, queue in zip(groups, queues, strict=True):
                if queue and _current(group) is None:  # one job at a time per group
                    _start(client, queue.pop(0), settings)
            active = [job for group in groups for job in group if job.running]
            if not active and not any(queues):
                break
            time.sleep(POLL_SECONDS)
            for job in active:
                _settle(job, on_record)
            if stop():
                reason = "stopped"
                break
    except KeyboardInterrupt:
        reason = "interrupted (KeyboardInterrupt)"
    finally:
        if reason:
            _interrupt(client, [job for group in groups for job in group if job.running], on_record)
            for queue in queues:
                for job in queue:
                    job.error = f"not measured: the sweep was {reason} before its turn"
        for group in groups:
            for job in group:
                job.bar.close()
    return reason


def _current(group: Sequence[Job]) -> Job | None:
    return next((job for job in group if job.running), None)


def _start(client: Any, job: Job, settings: Settings) -> None:
    try:
        job.future = client[job.engine].apply_async(settings.entry, settings.packed, settings.arguments)
    except Exception as exc:  # the engine went away before its turn
        job.error = f"engine {job.engine} could not start the sweep: {_remote_reason(exc)}"


def _forward(job: Job, on_record: OnRecord | None) -> None:
    """Hand on the runs the engine published since the last look, in order."""
    data = job.future.data if job.future is not None else {}
    while (record := data.get(f"run{len(job.records)}")) is not None:
        job.records.append(record)
        job.bar.update(1)
        if on_record is not None:
            on_record(job, record)


def partial(job: Job, settings: Settings) -> SweepResult:
    """The runs received so far, as a result (what ``on_run``'s ``progress.result()`` gives)."""
    return SweepResult.from_records(job.records, settings.params, label=settings.label, complete=False,
                                    planned_runs=settings.planned_runs, stop_reason="still running")


def _settle(job: Job, on_record: OnRecord | None, wait: float = 0) -> None:
    """Hand on new runs; once the engine has answered, take the job's result or the reason there is none."""
    from mlxtune.store import from_document

    _forward(job, on_record)
    if not job.future.wait(wait):
        return
    _forward(job, on_record)  # the last runs may come with the reply
    try:
        reply = job.future.get(0)
    except Exception as exc:  # an engine lost, or an error outside the sweep (e.g. a name it cannot import)
        job.error = _remote_reason(exc)
        return
    try:  # e.g. an engine with a newer mlxtune: its host fails, the others' results are kept
        job.result = SweepResult(**from_document(json.loads(reply["document"]), f"engine {job.engine}"))
    except ValueError as exc:
        job.error = f"its result could not be read here: {exc}"
        return
    job.sweep_error = reply["error"]


def _remote_reason(exc: BaseException) -> str:
    """An engine's failure in one line: the remote exception's type and message, or how it was lost."""
    name, value = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if name:
        return f"{name}: {value}"
    return describe_error(exc)


def _interrupt(client: Any, jobs: Sequence[Job], on_record: OnRecord | None) -> None:
    """Ctrl-C the engines' sweeps and wait (a while) for what they measured."""
    if not jobs:
        return
    with contextlib.suppress(Exception):  # an engine already gone has nothing to send back
        client.send_signal("SIGINT", targets=[job.engine for job in jobs], block=True)
    deadline = time.monotonic() + GRACE_SECONDS
    for job in jobs:
        with contextlib.suppress(Exception):
            _settle(job, on_record, wait=max(0.0, deadline - time.monotonic()))
        if job.running:
            job.error = f"interrupted, and no answer within {GRACE_SECONDS:g} s"


def isolated(where: Any, settings: Settings, *, progress: bool, on_record: OnRecord | None,
             stop: Callable[[], bool]) -> Job:
    """Run one sweep in an engine: ``where`` is True (a fresh local engine, started and stopped here),
    or an ipyparallel Cluster or Client whose first engine runs it. Returns the finished job."""
    ipp = require_ipyparallel()
    job = Job(settings.label, 0)  # its progress bar is named as the sweep
    with engines_of(ipp, where) as client:
        job.engine = client.ids[0]
        run_jobs(client, [[job]], settings, progress=progress, on_record=on_record, stop=stop)
    return job


@contextlib.contextmanager
def engines_of(ipp: ModuleType, where: Any) -> Iterator[Any]:
    """A client with at least one engine: ``where``'s (a Client, a started Cluster, or a profile
    name), or with ``where=True`` a one-engine local cluster for the duration. A client made here
    is closed here (its sockets are files); one given is left open."""
    if where is True:
        with tempfile.TemporaryDirectory(prefix="mlxtune-engine-") as profile:
            cluster = ipp.Cluster(n=1, profile_dir=profile, controller_ip="127.0.0.1",
                                  log_level=logging.ERROR)
            client = None
            try:
                client = cluster.start_and_connect_sync()
                yield client
            finally:
                with contextlib.suppress(Exception):
                    if client is not None:
                        client.close()
                    cluster.stop_cluster_sync()
        return
    client = _connect(ipp, where)
    try:
        yield client
    finally:
        if client is not where:
            client.close()


def _connect(ipp: ModuleType, where: Any) -> Any:
    """An ipyparallel Client from a Client, a started Cluster, or a profile name, with engines."""
    if isinstance(where, ipp.Client):
        client = where
    elif isinstance(where, ipp.Cluster):
        client = where.connect_client_sync()
    elif isinstance(where, str):
        try:
            client = ipp.Client(profile=where, timeout=10)
        except Exception as exc:
            why = describe_error(exc)
            raise RemoteError(f"cannot reach the ipyparallel cluster of profile {where!r} ({why}); "
                              f"start it with: ipcluster start --profile={where}") from None
    else:
        raise ValueError("isolate/cluster must be True, an ipyparallel Cluster or Client, or a profile name, "
                         f"not {type(where).__name__}")
    if not client.ids:
        raise RemoteError("the ipyparallel cluster has no engines: start some (ipcluster start -n 2)")
    return client
