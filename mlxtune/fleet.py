"""The same sweep on several machines, through ipyparallel: one answer for a fleet of devices.

An 8 GB M1 and a 36 GB M3 Max do not share a knee, yet an app ships one cache limit to both. Start
one ipyparallel engine per Mac (see the README: an SSH profile), then::

    import ipyparallel as ipp
    import mlxtune.fleet

    fleet = mlxtune.fleet.sweep(ipp.Client(profile="lab"), "mlx-community/Llama-3.2-1B-Instruct-4bit",
                                cache_limits="0,4MB,16MB,64MB,unlimited", repeats="auto")
    fleet.recommend(budget={"mini-m1": "3GB"})   # the smallest limit fast on every host
    fleet.to_html("fleet.html")

Each engine runs an ordinary :func:`mlxtune.sweep` (:mod:`mlxtune.remote` says what travels) and
the results come back as one :class:`~mlxtune.fleet_result.FleetResult`, tagged by host.
"""

from __future__ import annotations

import dataclasses
import platform
from collections.abc import Sequence
from typing import Any

from mlxtune.fleet_result import FleetResult
from mlxtune.remote import Job, Settings, engines_of, partial, require_ipyparallel, run_jobs
from mlxtune.result import SweepResult
from mlxtune.sweep import PlanError, engine_settings

__all__ = ["ENGINES", "FleetResult", "sweep"]

#: ``engines=``: one engine per host (the lowest id on each), or every engine (named host#id).
ENGINES = ("host", "all")


def sweep(where: Any, workload: object, *, engines: str = "host", parallel: bool = True,
          progress: bool = True, label: str | None = None, **settings: Any) -> FleetResult:
    """Run the same sweep on the engines of ``where`` (an ipyparallel Client, a started Cluster, or a
    profile name) and merge the results by host.

    ``workload`` must travel: a model folder or hub id (the same on every host), an importable
    ``"module:function"``, or a picklable callable. ``settings`` are :func:`mlxtune.sweep`'s
    (``cache_limits``, ``repeats``, ``budget``, ...), checked here before any engine is asked.
    ``parallel=True`` measures different hosts at the same time; engines that share a host always run
    one after another, since they would share its memory and GPU. One progress bar per host. A host
    whose engine fails or is lost is kept in ``failures`` with its error, and the runs it streamed back
    before are kept in ``results`` (incomplete) as the other hosts' are;
    Ctrl-C (or ``stop=``) interrupts every engine and returns what came back, marked incomplete.
    """
    if engines not in ENGINES:
        raise PlanError(f"engines must be one of {', '.join(map(repr, ENGINES))}, not {engines!r}")
    shared, stop = engine_settings(workload, label=label, **settings)
    with engines_of(require_ipyparallel(), where) as client:
        groups = _groups(_engine_hosts(client), every_engine=engines == "all", parallel=parallel)
        reason = run_jobs(client, groups, shared, progress=progress, stop=stop)
    jobs = [job for group in groups for job in group]
    return FleetResult(
        results={job.name: _kept(job, shared) for job in jobs if job.result is not None or job.records},
        failures={job.name: job.error for job in jobs if job.result is None},
        label=shared.label,
        complete=not reason,
        stop_reason=f"{reason}; the hosts measured until then are kept" if reason else "",
    )


def _kept(job: Job, shared: Settings) -> SweepResult:
    """A host's result; for an engine lost mid-sweep, the runs it streamed back before (its failure
    stays in ``failures`` too)."""
    if job.result is not None:
        return job.result
    return dataclasses.replace(partial(job, shared), stop_reason=f"the engine was lost: {job.error}")


def _engine_hosts(client: Any) -> dict[int, str]:
    """Each engine's host name, asked of the engine itself."""
    names = client[client.ids].apply_sync(platform.node)
    return dict(zip(client.ids, names, strict=True))


def _groups(hosts: dict[int, str], *, every_engine: bool, parallel: bool) -> list[list[Job]]:
    """The jobs, grouped so that a group runs one job at a time: one group per host when ``parallel``,
    else one group for all. Jobs are named by host, with ``#id`` when a host runs several."""
    by_host: dict[str, list[int]] = {}
    for engine, host in sorted(hosts.items()):
        by_host.setdefault(host, []).append(engine)
    groups: list[list[Job]] = []
    for host, ids in by_host.items():
        chosen: Sequence[int] = ids if every_engine else ids[:1]
        groups.append([Job(host if len(chosen) == 1 else f"{host}#{engine}", engine) for engine in chosen])
    return groups if parallel else [[job for group in groups for job in group]]
