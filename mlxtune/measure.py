"""One measured run: a callable and the limits in force go in, a :class:`RunRecord` comes out.

The record shape itself (and what a workload may return) is :mod:`mlxtune.record`, which has no MLX.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any

from mlxtune import memory
from mlxtune.record import (
    FILE_COLUMNS,
    MEASURED_COLUMNS,
    RunRecord,
    Work,
    as_work,
    describe_error,
    error_detail,
)
from mlxtune.sampler import DEFAULT_INTERVAL, Sampler

__all__ = ["Measured", "measure"]


@dataclasses.dataclass(frozen=True)
class Measured:
    """A record, the workload's return value, and the exception it raised (if any)."""

    record: RunRecord
    value: Any = None
    exception: BaseException | None = None


def measure(
    work: Callable[[], Any],
    *,
    params: Mapping[str, Any] | None = None,
    repeat: int = 0,
    clear: bool = True,
    count: Callable[[Any], Work] = as_work,
    sample_interval: float | None = DEFAULT_INTERVAL,
) -> Measured:
    """Run ``work`` once under the limits already in force and record it.

    The cache is cleared first (``clear=True``) and the peak reset, so runs do not inherit each
    other's buffers. An ``Exception`` (or ``SystemExit``) from ``work``, or a value ``count`` cannot
    use, is recorded, not raised: the caller decides (any exception but ``KeyboardInterrupt``,
    which propagates). Memory is
    sampled every ``sample_interval`` seconds while the run goes on (:mod:`mlxtune.sampler`; None
    for none): the record's ``footprint_peak`` and ``process_peak`` and its ``samples`` come from it.
    """
    started_at = time.time()
    value = None
    failure: BaseException | None = None
    with memory.track(clear=clear, sampler=Sampler(sample_interval)) as tracking:
        try:
            value = work()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # recorded, and handed to the caller: SystemExit, asyncio's
            failure = exc               # CancelledError and a test framework's skip or fail too
    before, after = tracking.before, tracking.after
    assert after is not None and tracking.seconds is not None
    done = Work(units=0.0) if failure else _count_or_fail(count, value, params or {})
    if isinstance(done, Exception):
        failure, done = done, Work(units=0.0)
    record = RunRecord(
        params=dict(params or {}),
        repeat=repeat,
        seconds=float(done.seconds) if done.seconds is not None else tracking.seconds,
        wall_seconds=tracking.seconds,
        units=done.units,
        unit=done.unit,
        peak_memory=tracking.peak,
        active_before=before.active,
        active_after=after.active,
        cache_before=before.cache,
        cache_after=after.cache,
        process_rss=after.process_rss,
        cache_limit=before.cache_limit,
        memory_limit=before.memory_limit,
        started_at=started_at,
        error=describe_error(failure) if failure else "",
        error_detail=error_detail(failure) if failure else "",
        metrics=dict(done.metrics),
        footprint_peak=tracking.footprint_peak,
        process_peak=tracking.process_peak,
        samples=tracking.samples,
    )
    return Measured(record=record, value=value, exception=failure)


def _count_or_fail(count: Callable[[Any], Work], value: Any, params: Mapping[str, Any]) -> Work | Exception:
    """What the run did; an Exception (recorded as the run's failure) when it cannot be used."""
    try:
        done = count(value)
    except Exception as exc:  # a bad return value fails the run, not the caller
        return exc
    clashes = sorted(set(done.metrics) & {"cache_limit", *MEASURED_COLUMNS, *FILE_COLUMNS, *params})
    if clashes:
        return ValueError(f"metric {clashes[0]!r} has the name of a run column; rename it (e.g. "
                          f"'{clashes[0]}_metric')")
    return done
