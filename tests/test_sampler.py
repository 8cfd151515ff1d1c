"""Memory over time: the sampler on real MLX (CPU), the peak it catches, and the chat workload."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np
import pytest

from mlxtune import memory
from mlxtune.measure import measure
from mlxtune.sampler import Sampler
from mlxtune.sampler import _thread as sampler_thread
from mlxtune.sweep import sweep
from mlxtune.units import UNLIMITED
from mlxtune.workloads import chat

MB = 1_000_000


def transient() -> int:
    """A big buffer that is freed before the end: the run ends where it started, but went 200 MB up."""
    first = mx.ones((25_000_000,), dtype=mx.float32)  # 100 MB
    mx.eval(first)
    del first  # into the cache (the limit is unlimited here)
    second = mx.ones((25_000_001,), dtype=mx.float32)  # another 100 MB, a size the cache cannot serve
    mx.eval(second)
    time.sleep(0.05)  # the worst moment lasts long enough to be seen
    del second
    mx.clear_cache()
    return 1


def test_the_sampled_peak_catches_a_transient_that_before_and_after_miss() -> None:
    with memory.cache_limit("unlimited"):
        record = measure(transient, sample_interval=0.002).record
    before_after = record.peak_memory + record.cache_after  # the footprint from snapshots alone
    assert before_after < 120 * MB
    assert record.footprint_peak > 190 * MB  # active 100 MB + cache 100 MB at once
    assert record.samples is not None and len(record.samples) > 5
    assert record.process_peak >= record.process_rss - 50 * MB


def test_the_sampled_peak_survives_thinning() -> None:
    """Past its most samples the sampler drops every other one; the one holding the peak stays."""
    sampler = Sampler(interval=None, max_samples=16)
    with memory.cache_limit("unlimited"):
        sampler.start()  # sample 0: the baseline
        big = mx.ones((12_500_000,), dtype=mx.float32)  # 50 MB
        mx.eval(big)
        sampler.sample()  # sample 1: the peak, at an odd position, which thinning drops first
        del big
        mx.clear_cache()
        for _ in range(40):  # two thinnings
            sampler.sample()
        samples = sampler.stop()
    assert len(samples) < 42  # it did thin
    assert samples.footprint_peak >= 50 * MB


def churn() -> int:
    for size in (50_000, 200_000, 800_000, 120_000) * 4:
        mx.eval(mx.ones((size,)) * 2)
    return 16


def churn_until_sampled() -> int:
    """Churn until the run's sampler has taken 8 samples: as long as a busy machine needs, no clock."""
    sampling = sampler_thread()._current
    done = churn()
    while sampling is not None and len(sampling._rows) < 8:
        done += churn()
    return done


def test_the_cache_in_a_timeline_never_stays_above_its_limit_on_cpu() -> None:
    result = sweep(churn_until_sampled, cache_limits=["1MB", "4MB", "unlimited"], repeats=2, warmup=1,
                   progress=False, sample_interval=0.0005)
    timelines = result.timelines.merge(result.runs.reset_index(drop=True)[["cache_limit"]], left_on="run",
                                       right_index=True)
    limited = timelines[timelines["cache_limit"] < UNLIMITED]
    assert len(limited) > 20
    assert (limited["cache"] <= limited["cache_limit"]).all()
    # with no limit the cache does hold more, so the check above is not vacuous
    assert timelines.loc[timelines["cache_limit"] == UNLIMITED, "cache"].max() > 4 * MB
    assert (result.runs["footprint_peak"] >= result.runs["peak_memory"]).all()


def test_reading_counters_from_another_thread_does_not_disturb_a_run() -> None:
    """The sampler's thread reads MLX's counters while the run evaluates on its own streams: the run's
    work and result are the same as without it, and nothing fails on either thread."""
    a = mx.random.normal((256, 256), key=mx.random.key(1))
    expected = np.array(a @ a)
    errors: list[BaseException] = []

    def reader(stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                memory.counters()
        except BaseException as exc:  # any failure on the reading thread is the test's
            errors.append(exc)

    stop = threading.Event()
    thread = threading.Thread(target=reader, args=(stop,))
    thread.start()
    try:
        with Sampler(0.0002) as sampler:
            for _ in range(50):
                result = a @ a
                mx.eval(result)
    finally:
        stop.set()
        thread.join()
    assert not errors and len(sampler.samples) > 20
    np.testing.assert_allclose(np.array(result), expected, rtol=1e-5)


def test_a_long_run_keeps_an_even_bounded_history() -> None:
    sampler = Sampler(0.0005, max_samples=32).start()
    time.sleep(0.2)
    samples = sampler.stop()
    assert 16 <= len(samples) <= 33
    gaps = np.diff(samples.values[:, 0])
    assert gaps.max() < 10 * np.median(gaps)  # thinned evenly: no hole where samples were dropped
    assert len(samples.thinned(10)) <= 10


def test_a_chat_sweep_shows_memory_per_turn_for_each_limit(tiny_model_path: Path) -> None:
    talk = chat(str(tiny_model_path), turns=3, tokens_per_turn=8, prompt_tokens=16,
                mlx_cache_clearing="avoid")
    result = sweep(talk, cache_limits=[0, "20MB", "unlimited"], repeats=2, warmup=1, progress=False,
                   design="runs")  # memory per turn is a whole conversation's
    runs = result.runs
    assert len(runs) == 6 and result.failed_runs == 0
    assert (runs["units"] == 3 * 8).all() and (runs["unit"] == "tokens").all()
    for turn in (1, 2, 3):
        assert (runs[f"turn{turn}_memory"] > 0).all() and (runs[f"turn{turn}_tps"] > 0).all()
    assert (runs["turn3_memory"] >= runs["turn1_memory"]).all()  # the conversation's KV cache grows
    at_zero = runs[runs["cache_limit"] == 0]
    assert (at_zero["cache_after"] == 0).all()
    assert "chat(" in result.workload and "turns=3" in result.workload
    assert len(result.timelines["run"].unique()) == len(runs)


def test_a_chat_runs_in_steps_a_conversation_a_generation_and_refuses_a_batch(tiny_model_path: Path) -> None:
    talk = chat(str(tiny_model_path), turns=2, tokens_per_turn=6, prompt_tokens=8)
    result = sweep(talk, cache_limits=[0, "unlimited"], repeats=6, progress=False)
    blocks = result.blocks
    assert result.design == "paired" and len(blocks) == 12 and (blocks["error"] == "").all()
    # a conversation is 2 turns of 6 tokens: each turn's prompt is untimed, so no block counts more
    assert (blocks["units"] == blocks["steps"]).all() and int(blocks["generation"].max()) >= 2
    with pytest.raises(ValueError, match="a chat holds one conversation: batch must be 1, not 4"):
        chat(str(tiny_model_path), batch=4)


def test_measured_cell_keeps_its_value_and_samples(shell: Any) -> None:
    value = shell.run_cell_magic("mlxmem", "-q", "x = 5\nx * 2")
    assert value == 10  # like %%time: the cell's value is the magic's, so it lands in Out[]
    cell = shell.run_cell_magic("mlxmem", "-o -t", "y = mx.ones((1000, 1000))\ny * 2")
    assert len(cell.samples()) >= 2 and set(cell.samples().columns) == {"run", "seconds", "active", "cache",
                                                                       "process"}
    assert cell.peak_increase >= 4_000_000  # the 4 MB array and its double
    bundle = cell.mimebundle()
    assert "<img alt='memory over time'" in bundle["text/html"] and "Peak increase" in bundle["text/plain"]
