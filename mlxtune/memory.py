"""The only module that talks to MLX's memory API.

Backend differences (Metal, CUDA, CPU) stay inside this file. MLX evaluates lazily and on its own
streams, so every reading is taken after pending work is done (:func:`settle`). Python has no
getters for the cache and wired limits: they are read by setting a value and putting the old one
back when it differs; for the cache limit the value tried first is the one mlxtune last knew, so
a read is usually one call (on MLX's CPU build each call is a synchronize, ~5-45 us).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any, Literal, Protocol

import psutil

from mlxtune._mlx import mx
from mlxtune.record import Samples
from mlxtune.units import UNLIMITED, format_size, parse_size

__all__ = [
    "LIMIT_READ_SYNCS",
    "Backend",
    "Snapshot",
    "SnapshotDelta",
    "Tracking",
    "backend",
    "cache_limit",
    "counters",
    "device_info",
    "get_cache_limit",
    "get_memory_limit",
    "get_wired_limit",
    "memory_limit",
    "process_memory",
    "process_rss",
    "set_cache_limit",
    "settle",
    "snapshot",
    "track",
    "wired_limit",
]

Backend = Literal["metal", "cuda", "cpu"]


def _gpu_backend() -> Literal["metal", "cuda"] | None:
    """The GPU backend this MLX build has, or None for a CPU-only build."""
    if mx.metal.is_available():
        return "metal"
    cuda = getattr(mx, "cuda", None)
    return "cuda" if cuda is not None and cuda.is_available() else None


def backend() -> Backend:
    """Which MLX backend runs the default device: "metal", "cuda" or "cpu"."""
    if mx.default_device().type == mx.cpu:
        return "cpu"
    return _gpu_backend() or "cpu"


def device_info() -> dict[str, Any]:
    """MLX's device description plus ``backend`` and ``system_memory``.

    The keys MLX gives differ per backend (Metal adds ``memory_size`` and
    ``max_recommended_working_set_size``); the two added keys are always there.
    """
    info_fn = getattr(mx, "device_info", None) or mx.metal.device_info
    info = dict(info_fn())
    info["backend"] = backend()
    info["system_memory"] = psutil.virtual_memory().total
    return info


# -- limits -------------------------------------------------------------------------------------


class _CacheLimitState:
    """The cache limit mlxtune last set or read, so one ``set_cache_limit`` call can confirm it."""

    known: int | None = None


def _mlx_version() -> tuple[int, ...]:
    parts = re.findall(r"\d+", getattr(mx, "__version__", "0"))[:2]
    return tuple(int(p) for p in parts)


#: MLX's CPU-only build (since 0.32) synchronizes every CPU stream inside ``set_cache_limit``
#: before it may evict cached buffers, so a cache-limit read there is also a full synchronize.
LIMIT_READ_SYNCS: bool = _gpu_backend() is None and _mlx_version() >= (0, 32)


def get_cache_limit() -> int:
    """The cache limit in force, read by setting a value and putting the old one back if it differs.

    The value swapped in is the limit mlxtune last knew (so the read is one call when nobody
    changed it) or "unlimited" when the cache already holds more than that value: swapping in a
    limit below the cache would evict buffers, and "unlimited" never does. Each call costs one
    synchronize of the CPU streams on MLX's CPU build, so one call instead of two matters.

    One corner remains: if the limit was raised outside mlxtune and work still pending fills the
    cache past the known value during the call, MLX trims the cache to it before the read puts
    the real limit back. Only cached (free) buffers go; no limit is left changed.
    """
    known = _CacheLimitState.known
    probe = known if known is not None and mx.get_cache_memory() <= known else UNLIMITED
    previous = mx.set_cache_limit(probe)
    if previous != probe:
        mx.set_cache_limit(previous)
    _CacheLimitState.known = previous
    return previous


def set_cache_limit(limit: int) -> int:
    """Set the cache limit (bytes); returns the previous one. Keeps :func:`get_cache_limit` cheap."""
    previous = mx.set_cache_limit(limit)
    _CacheLimitState.known = limit
    return previous


def settle() -> int:
    """Wait for pending MLX work and return the cache limit in force.

    Counters and clocks are only meaningful after pending work is done. Where reading the cache
    limit already synchronizes every CPU stream (see :data:`LIMIT_READ_SYNCS`), that read is the
    synchronization; elsewhere ``mx.synchronize()`` comes first.
    """
    if not LIMIT_READ_SYNCS:
        mx.synchronize()
    return get_cache_limit()


def get_memory_limit() -> int:
    """The memory limit in force."""
    getter = getattr(mx, "get_memory_limit", None)
    if getter is not None:
        return getter()
    previous = mx.set_memory_limit(UNLIMITED)
    mx.set_memory_limit(previous)
    return previous


def get_wired_limit() -> int:
    """The wired limit in force (always 0 where the backend does not wire memory)."""
    previous = mx.set_wired_limit(0)
    mx.set_wired_limit(previous)
    return previous


@contextlib.contextmanager
def cache_limit(size: str | int) -> Iterator[int]:
    """Run the block under a cache limit; the previous one comes back on any exit, Ctrl-C too."""
    limit = parse_size(size)
    previous = set_cache_limit(limit)
    try:
        yield limit
    finally:
        set_cache_limit(previous)


@contextlib.contextmanager
def memory_limit(size: str | int) -> Iterator[int]:
    """Run the block under a memory limit, restored on any exit.

    MLX treats the memory limit as soft: below what is already in use it may wait or fail later
    rather than refuse now, so a limit below the active memory gives a warning.
    """
    limit = parse_size(size)
    active = active_memory()
    if limit < active:
        warnings.warn(
            f"memory limit {format_size(limit)} is below the {format_size(active)} MLX already "
            "uses; MLX treats it as a soft limit and may wait rather than fail",
            stacklevel=3,
        )
    previous = mx.set_memory_limit(limit)
    try:
        yield limit
    finally:
        mx.set_memory_limit(previous)


@contextlib.contextmanager
def wired_limit(size: str | int) -> Iterator[int]:
    """Run the block under a wired limit, restored on any exit.

    Only Metal wires memory; on CUDA and CPU MLX accepts and ignores the limit, and this warns so.
    On Metal a limit above the system's (``max_recommended_working_set_size``) is lowered to it,
    since MLX refuses a larger one.
    """
    limit = parse_size(size)
    name = backend()
    if name == "metal":
        limit = min(limit, device_info().get("max_recommended_working_set_size", limit))
    else:
        warnings.warn(f"the wired limit has no effect on the {name} backend (Metal only)", stacklevel=3)
    previous = mx.set_wired_limit(limit)
    try:
        yield limit
    finally:
        mx.set_wired_limit(previous)


def counters() -> tuple[int, int]:
    """MLX's active and cache memory now, without waiting for pending work: for sampling during a run.

    Safe from any thread: each is one unlocked read of a word-sized counter in MLX's allocator (the
    same on Metal, CUDA and CPU; no stream is touched, so nothing is created on the reading
    thread). A value may be a moment old; the run it reads is not disturbed.
    """
    return mx.get_active_memory(), mx.get_cache_memory()


def active_memory() -> int:
    """Bytes MLX holds in live arrays, after the pending work is done."""
    mx.synchronize()
    return mx.get_active_memory()


# -- snapshots ----------------------------------------------------------------------------------


class _Described:
    """What :class:`Snapshot` and :class:`SnapshotDelta` show alike: peak, active and cache."""

    peak: int
    active: int
    cache: int

    @property
    def description(self) -> str:
        """Three lines like mlx-swift's ``Memory.Snapshot.description``: scaled, then exact bytes."""
        lines = (("Peak:  ", self.peak), ("Active:", self.active), ("Cache: ", self.cache))
        return "\n".join(f"{name} {format_size(value):<12} ({value})" for name, value in lines)

    def to_dict(self) -> dict[str, int | float]:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        return self.description


@dataclasses.dataclass(frozen=True)
class Snapshot(_Described):
    """MLX's memory counters and limits at one moment, plus what the OS sees (resident set).

    MLX's counters cover its own allocator only; ``process_rss`` shows the whole process.
    """

    active: int
    cache: int
    peak: int
    cache_limit: int
    memory_limit: int
    wired_limit: int
    process_rss: int
    taken_at: float
    process_memory: int = 0

    def delta(self, later: Snapshot) -> SnapshotDelta:
        """``later`` minus this snapshot."""
        return SnapshotDelta(
            active=later.active - self.active,
            cache=later.cache - self.cache,
            peak=later.peak - self.peak,
            process_rss=later.process_rss - self.process_rss,
            seconds=later.taken_at - self.taken_at,
        )

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self._text())

    def _text(self) -> str:
        """The snapshot for a terminal (:func:`mlxtune.present.snapshot_text`)."""
        from mlxtune.present import snapshot_text

        return snapshot_text(self)

    def _repr_html_(self) -> str:
        """The snapshot for a notebook (:func:`mlxtune.present.snapshot_html`)."""
        from mlxtune.present import snapshot_html

        return snapshot_html(self)


@dataclasses.dataclass(frozen=True)
class SnapshotDelta(_Described):
    """The change between two snapshots (later minus earlier), in bytes and seconds."""

    active: int
    cache: int
    peak: int
    process_rss: int
    seconds: float


def snapshot(*, sync: bool = True) -> Snapshot:
    """Read MLX's counters and limits and the process's resident memory.

    ``sync=False`` skips the ``mx.synchronize()``, for callers that have just waited or must not
    wait; where reading the cache limit synchronizes (:data:`LIMIT_READ_SYNCS`), that read still does.
    """
    return _read(settle() if sync else get_cache_limit())


def _read(cache_limit: int) -> Snapshot:
    """A snapshot with the cache limit already read (reading it may be the costly part)."""
    return Snapshot(
        active=mx.get_active_memory(),
        cache=mx.get_cache_memory(),
        peak=mx.get_peak_memory(),
        cache_limit=cache_limit,
        memory_limit=get_memory_limit(),
        wired_limit=get_wired_limit(),
        process_rss=process_rss(),
        taken_at=time.time(),
        process_memory=process_memory(),
    )


class _Statm:
    """``/proc/self/statm`` held open by the process that opened it (a read is ~2 us, psutil ~20 us)."""

    fd: int | None = None
    pid: int = 0
    lock = threading.Lock()
    page_size: int = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def process_memory() -> int:
    """The process's memory as the OS counts it against the process, in bytes.

    On macOS (and iOS) that is the physical footprint, ``ri_phys_footprint`` of
    ``proc_pid_rusage``: what jetsam compares with an app's limit, and what Xcode's memory gauge
    shows. It counts compressed and GPU memory the process owns, which the resident set does not.
    Elsewhere it is the resident set (:func:`process_rss`).
    """
    if sys.platform == "darwin":
        footprint = _Footprint.read()
        if footprint is not None:
            return footprint
    return process_rss()


class _Footprint:
    """``proc_pid_rusage(pid, RUSAGE_INFO_V0, &info).ri_phys_footprint`` through ctypes (macOS only).

    Written from Apple's ``<libproc.h>`` and ``<sys/resource.h>``: ``rusage_info_v0`` is a 16-byte
    UUID followed by ten ``uint64_t``, the eighth of which is ``ri_phys_footprint``.
    """

    _call: Any = None
    _failed = False

    @classmethod
    def read(cls) -> int | None:
        if cls._failed:
            return None
        if cls._call is None:
            try:
                import ctypes
                import ctypes.util

                library = ctypes.CDLL(ctypes.util.find_library("proc") or "/usr/lib/libproc.dylib")
                cls._call = library.proc_pid_rusage
                cls._call.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
                cls._call.restype = ctypes.c_int
                cls._info = (ctypes.c_uint64 * 12)()  # 16-byte UUID (2 words), then ten counters
                cls._pid = os.getpid()
            except (OSError, AttributeError):
                cls._failed = True
                return None
        if cls._call(cls._pid, 0, cls._info) != 0:  # RUSAGE_INFO_V0
            cls._failed = True
            return None
        return int(cls._info[2 + 7])


def process_rss() -> int:
    """Resident memory of this process as the OS sees it, in bytes."""
    if not sys.platform.startswith("linux"):
        return psutil.Process().memory_info().rss
    pid = os.getpid()
    if _Statm.pid != pid:  # first call, or a forked child (whose inherited reader shows the parent)
        with _Statm.lock:
            if _Statm.pid != pid:
                if _Statm.fd is not None:
                    os.close(_Statm.fd)
                _Statm.fd, _Statm.pid = os.open("/proc/self/statm", os.O_RDONLY), pid
    assert _Statm.fd is not None
    return int(os.pread(_Statm.fd, 128, 0).split()[1]) * _Statm.page_size


# -- tracking a block ---------------------------------------------------------------------------


@dataclasses.dataclass
class Tracking:
    """What :func:`track` measured: snapshots around the block, its peak, its wall time and the
    memory sampled while it ran.

    ``after``, ``seconds`` and ``samples`` are filled in when the block ends (also when it raises).
    """

    before: Snapshot
    after: Snapshot | None = None
    seconds: float | None = None
    samples: Samples | None = None

    @property
    def delta(self) -> SnapshotDelta:
        if self.after is None:
            raise RuntimeError("the tracked block has not finished")
        return self.before.delta(self.after)

    @property
    def peak(self) -> int:
        """Largest MLX memory during the block; at least what was live when it began or ended.

        MLX resets its peak counter to 0, so a block that allocates nothing reports the memory
        already held instead.
        """
        if self.after is None:
            raise RuntimeError("the tracked block has not finished")
        return max(self.after.peak, self.before.active, self.after.active)

    @property
    def footprint_peak(self) -> int:
        """The largest MLX active + cache during the block: the sampled peak, and never less than the
        peak active memory or what was held at either end."""
        if self.after is None:
            raise RuntimeError("the tracked block has not finished")
        sampled = self.samples.footprint_peak if self.samples is not None else 0
        ends = max(self.before.active + self.before.cache, self.after.active + self.after.cache)
        return max(sampled, self.peak, ends)

    @property
    def process_peak(self) -> int:
        """The largest process memory the OS counted during the block (sampled; at least the end's)."""
        if self.after is None:
            raise RuntimeError("the tracked block has not finished")
        sampled = self.samples.process_peak if self.samples is not None else 0
        return max(sampled, self.after.process_memory)


class Sampling(Protocol):
    """What :func:`track` needs of a sampler (:class:`mlxtune.sampler.Sampler`, which reads this module)."""

    def start(self) -> None: ...

    def stop(self) -> Samples: ...


@contextlib.contextmanager
def track(*, clear: bool = False, sampler: Sampling | None = None) -> Iterator[Tracking]:
    """Measure a block: reset the peak, snapshot before and after, time it after synchronizing.

    ``clear=True`` empties MLX's cache first, so the block starts without reusable buffers. A
    ``sampler`` (:class:`mlxtune.sampler.Sampler`) samples memory during the block: it starts
    before the clock and stops after it, so its thread costs the timing nothing.
    """
    if clear:
        mx.clear_cache()
    limit = settle()
    mx.reset_peak_memory()
    tracking = Tracking(before=_read(limit))
    if sampler is not None:
        sampler.start()
    start = time.perf_counter()
    try:
        yield tracking
    finally:
        limit = settle()
        tracking.seconds = time.perf_counter() - start
        tracking.samples = sampler.stop() if sampler is not None else None
        tracking.after = _read(limit)
