"""MLX memory readings, limits and tracking, on real MLX (CPU backend here)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from typing import Any

import mlx.core as mx
import psutil
import pytest

from mlxtune import memory
from mlxtune.units import UNLIMITED, parse_size

MiB = 1024**2


@pytest.fixture(autouse=True)
def restore_limits() -> Iterator[None]:
    """Put MLX's limits back even when a test fails, so tests cannot leak a limit into others."""
    cache, mem = mx.set_cache_limit(UNLIMITED), mx.get_memory_limit()
    mx.set_cache_limit(cache)
    yield
    memory.set_cache_limit(cache)
    mx.set_memory_limit(mem)


class CountingMLX:
    """Passes every call through to mlx.core, counting ``set_cache_limit`` calls."""

    def __init__(self) -> None:
        self.set_cache_limit_calls = 0

    def set_cache_limit(self, limit: int) -> int:
        self.set_cache_limit_calls += 1
        return mx.set_cache_limit(limit)

    def __getattr__(self, name: str) -> Any:
        return getattr(mx, name)


def fill_cache(nbytes: int) -> None:
    """Leave about ``nbytes`` in MLX's cache: allocate an array and drop it."""
    a = mx.zeros((nbytes // 4,), dtype=mx.float32)
    mx.eval(a)
    del a
    mx.synchronize()


def test_backend_and_device_info() -> None:
    assert memory.backend() in ("metal", "cuda", "cpu")
    info = memory.device_info()
    assert info["backend"] == memory.backend()
    assert info["system_memory"] == psutil.virtual_memory().total


def test_cache_limit_reads_back_what_was_set_and_leaves_it() -> None:
    memory.set_cache_limit(3 * MiB)
    assert memory.get_cache_limit() == 3 * MiB
    assert mx.set_cache_limit(3 * MiB) == 3 * MiB  # still in force after the read


def test_cache_limit_changed_behind_mlxtunes_back_is_read_correctly() -> None:
    memory.set_cache_limit(1 * MiB)
    mx.set_cache_limit(64 * MiB)  # the user sets it directly
    fill_cache(8 * MiB)
    cached = mx.get_cache_memory()
    assert cached >= 8 * MiB
    assert memory.get_cache_limit() == 64 * MiB
    assert mx.get_cache_memory() == cached, "reading the limit must not evict cached buffers"
    assert mx.set_cache_limit(64 * MiB) == 64 * MiB


def test_known_cache_limit_is_confirmed_with_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    memory.set_cache_limit(5 * MiB)
    counting = CountingMLX()
    monkeypatch.setattr(memory, "mx", counting)
    assert memory.get_cache_limit() == 5 * MiB
    assert counting.set_cache_limit_calls == 1
    mx.set_cache_limit(6 * MiB)  # changed directly: two calls to read and restore
    assert memory.get_cache_limit() == 6 * MiB
    assert counting.set_cache_limit_calls == 3
    assert mx.set_cache_limit(6 * MiB) == 6 * MiB


@pytest.mark.parametrize("exception", [RuntimeError, KeyboardInterrupt])
def test_limit_context_managers_restore_on_errors_and_ctrl_c(exception: type[BaseException]) -> None:
    memory.set_cache_limit(7 * MiB)
    mem_before = mx.get_memory_limit()
    with pytest.raises(exception), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with memory.cache_limit("1MB") as cache, memory.memory_limit("2GiB") as mem, memory.wired_limit(0):
            assert (cache, mem) == (1_000_000, 2 * 1024**3)
            assert memory.get_cache_limit() == 1_000_000
            assert mx.get_memory_limit() == 2 * 1024**3
            raise exception
    assert memory.get_cache_limit() == 7 * MiB
    assert mx.get_memory_limit() == mem_before


def test_cache_limits_nest() -> None:
    memory.set_cache_limit(7 * MiB)
    with memory.cache_limit("4MiB"):
        with memory.cache_limit(0):
            assert memory.get_cache_limit() == 0
        assert memory.get_cache_limit() == 4 * MiB
    assert memory.get_cache_limit() == 7 * MiB


def test_bad_size_sets_nothing() -> None:
    memory.set_cache_limit(7 * MiB)
    with pytest.raises(ValueError, match="banana"), memory.cache_limit("banana"):
        pass
    assert memory.get_cache_limit() == 7 * MiB


def test_memory_limit_below_active_memory_warns() -> None:
    keep = mx.ones((2 * MiB // 4,), dtype=mx.float32)
    mx.eval(keep)
    with pytest.warns(UserWarning, match="soft limit"), memory.memory_limit("1KB"):
        pass
    del keep


def test_wired_limit_says_where_it_has_no_effect() -> None:
    if memory.backend() == "metal":
        pytest.skip("Metal honours the wired limit")
    with pytest.warns(UserWarning, match="no effect"), memory.wired_limit("1MB"):
        pass


def test_snapshot_reads_counters_limits_and_process_memory() -> None:
    memory.set_cache_limit(9 * MiB)
    keep = mx.ones((MiB // 4,), dtype=mx.float32)
    mx.eval(keep)
    snap = memory.snapshot()
    assert snap.active >= MiB
    assert snap.cache_limit == 9 * MiB
    assert snap.memory_limit == mx.get_memory_limit()
    assert snap.wired_limit == memory.get_wired_limit()
    rss = psutil.Process(os.getpid()).memory_info().rss
    assert abs(snap.process_rss - rss) < 64 * MiB
    assert abs(snap.process_memory - rss) < 64 * MiB  # Linux: the resident set (macOS: phys_footprint)
    assert set(snap.to_dict()) == {
        "active", "cache", "peak", "cache_limit", "memory_limit", "wired_limit", "process_rss", "taken_at",
        "process_memory",
    }
    del keep


def test_snapshot_waits_for_pending_work() -> None:
    a = mx.ones((4 * MiB // 4,), dtype=mx.float32)
    before = memory.snapshot()
    mx.reset_peak_memory()
    mx.async_eval(a * 2)
    after = memory.snapshot()
    assert after.peak >= before.active + 8 * MiB  # ``a`` and ``a * 2`` both exist by then


def test_process_rss_matches_the_os() -> None:
    rss = psutil.Process(os.getpid()).memory_info().rss
    assert abs(memory.process_rss() - rss) < 16 * MiB


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_process_rss_in_a_forked_child_is_the_childs() -> None:
    memory.process_rss()  # the parent's reader is open before the fork
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: grow by 64 MiB of touched memory, report its readings, exit at once
        try:
            before = memory.process_rss()
            ballast = bytearray(64 * MiB)
            ballast[:: 4096] = b"x" * len(ballast[:: 4096])
            after = memory.process_rss()
            mine = psutil.Process().memory_info().rss
            os.write(write_end, f"{before} {after} {mine}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    before, after, expected = map(int, os.read(read_end, 100).split())
    os.close(read_end)
    os.waitpid(pid, 0)
    assert abs(after - expected) < 16 * MiB
    # A reader still bound to the parent would not see the child's 64 MiB grow.
    assert after - before > 48 * MiB


def test_snapshot_description_and_reprs() -> None:
    snap = memory.Snapshot(
        active=2_000_000, cache=0, peak=3_500_000, cache_limit=MiB, memory_limit=UNLIMITED,
        wired_limit=0, process_rss=100_000_000, taken_at=1.0,
    )
    assert snap.description.splitlines() == [
        "Peak:   3.5MB        (3500000)",
        "Active: 2MB          (2000000)",
        "Cache:  0B           (0)",
    ]
    assert "unlimited" in snap._repr_html_() and "<table>" in snap._repr_html_()
    later = memory.Snapshot(**{**snap.to_dict(), "active": 5_000_000, "taken_at": 3.0})
    delta = snap.delta(later)
    assert (delta.active, delta.cache, delta.seconds) == (3_000_000, 0, 2.0)


def test_track_counts_a_64mib_array() -> None:
    with memory.track() as tracking:
        a = mx.ones((64 * MiB // 4,), dtype=mx.float32)
        mx.eval(a)
    assert tracking.delta.active >= 64 * MiB
    assert tracking.peak >= 64 * MiB
    assert tracking.seconds is not None and tracking.seconds > 0
    del a


def test_track_clear_empties_the_cache_and_finishes_on_errors() -> None:
    fill_cache(4 * MiB)
    with pytest.raises(ZeroDivisionError), memory.track(clear=True) as tracking:
        1 / 0  # noqa: B018
    assert tracking.before.cache == 0
    assert tracking.after is not None and tracking.seconds is not None


def test_settle_returns_the_cache_limit_in_force() -> None:
    memory.set_cache_limit(11 * MiB)
    assert memory.settle() == 11 * MiB
    assert parse_size("11MiB") == memory.get_cache_limit()
