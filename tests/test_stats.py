"""Statistics on known data: summaries, intervals of the median and of ratios, significance."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from mlxtune.record import runs_frame
from mlxtune.stats import (
    SUMMARY_COLUMNS,
    is_significant,
    median_ci,
    ratio_ci,
    summarize,
    u_null_cdf,
)
from mlxtune.units import UNLIMITED

MB = 1_000_000


def row(cache_limit: int, throughput: float, repeat: int = 0, peak: int = 10 * MB, cache: int = 0,
        error: str = "", **params) -> dict:
    """One run row: ``throughput`` tokens/s over one second of work."""
    return {
        "cache_limit": cache_limit, **params, "repeat": repeat, "seconds": 1.0, "wall_seconds": 1.0,
        "units": throughput, "unit": "tokens", "throughput": math.nan if error else throughput,
        "peak_memory": peak, "active_before": 0, "active_after": 0, "cache_before": 0,
        "cache_after": cache, "process_rss": 100 * MB, "memory_limit": UNLIMITED, "started_at": 0.0,
        "error": error,
    }


# -- confidence interval of the median -----------------------------------------------------------


def test_median_ci_on_known_data():
    assert median_ci(range(1, 11)) == (2.0, 9.0)  # the textbook ranks for n = 10
    assert median_ci([5.0, 1.0, 3.0]) == (1.0, 5.0)  # too few for 95%: the full range
    assert median_ci([2.0, math.nan, 4.0, 3.0]) == (2.0, 4.0)
    assert all(math.isnan(v) for v in median_ci([]))


@pytest.mark.parametrize("n", range(6, 41))
def test_median_ci_covers_95_percent_with_the_tightest_ranks(n):
    low, high = median_ci(np.arange(1, n + 1, dtype=float))
    rank = int(low)
    assert high == n - rank + 1

    def coverage(k: int) -> float:
        return 1 - 2 * scipy_stats.binom.cdf(k - 1, n, 0.5)

    assert coverage(rank) >= 0.95
    assert coverage(rank + 1) < 0.95


# -- significance and ratios ---------------------------------------------------------------------


def test_is_significant_separates_clear_differences_only():
    fast, slow = [100, 101, 99, 102, 100, 98], [80, 81, 79, 82, 80, 78]
    assert is_significant(fast, slow)
    assert not is_significant(fast, [101, 99, 100, 102, 98, 100])
    assert not is_significant([3, 3, 3], [3, 3, 3])
    assert not is_significant([1.0], [2.0, 3.0])
    # 3 against 3 can never reach p < 0.05 with a two-sided rank test
    assert not is_significant([10, 11, 12], [1, 2, 3])
    assert is_significant([10, 11, 12, 13], [1, 2, 3, 4])


def test_ratio_ci_on_known_data():
    base = np.array([10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0])
    estimate, low, high = ratio_ci(2 * base, base)
    assert low < estimate < high and estimate == pytest.approx(2.0, rel=0.08)
    assert low < 2.0 < high
    same = ratio_ci(base, base)
    assert same[0] == pytest.approx(1.0) and same[1] < 1.0 < same[2]
    assert ratio_ci(10 * base, base)[1] > 5  # far apart: the interval excludes small ratios
    assert all(math.isnan(v) for v in ratio_ci([], base))


@pytest.mark.parametrize(("m", "n"), [(3, 3), (3, 4), (5, 5), (6, 8), (10, 10)])
def test_u_null_cdf_matches_the_exact_mann_whitney_p_values(m, n):
    cdf = u_null_cdf(m, n)
    assert len(cdf) == m * n + 1 and cdf[-1] == pytest.approx(1.0)
    rng = np.random.default_rng(m * 100 + n)
    for _ in range(10):
        values = rng.permutation(m + n).astype(float)
        test = scipy_stats.mannwhitneyu(values[:m], values[m:], method="exact", alternative="less")
        assert cdf[int(test.statistic)] == pytest.approx(test.pvalue)


def test_ratio_ci_uses_the_textbook_ranks():
    a = np.array([11.0, 13.0, 17.0, 19.0, 23.0])
    b = np.array([2.0, 3.0, 5.0, 7.0, 29.0])
    ratios = np.sort(np.divide.outer(a, b).ravel())
    _, low, high = ratio_ci(a, b)
    # 5 against 5 at 95%: the critical U is 2, so the bounds are the 3rd smallest and 3rd largest
    assert (low, high) == (pytest.approx(ratios[2]), pytest.approx(ratios[-3]))
    _, low, high = ratio_ci([4.0, 5.0, 6.0], [1.0, 2.0, 3.0])
    assert (low, high) == (pytest.approx(4 / 3), pytest.approx(6.0))  # 3 against 3: all pairs


# -- summaries ------------------------------------------------------------------------------------


def test_summarize_on_known_runs():
    rows = [row(0, t, i, peak=p, cache=c) for i, (t, p, c) in enumerate(
        [(1.0, 10, 0), (2.0, 30, 0), (3.0, 20, 0), (4.0, 10, 0)])]
    rows.append(row(0, 0.0, 4, peak=50, cache=5, error="RuntimeError: out of memory"))
    rows += [row(MB, t, i, peak=40, cache=900_000) for i, t in enumerate([10.0, 12.0, 11.0])]
    for r, metric in zip(rows, [5, 6, 7, 8, 0, 1, 2, 3], strict=True):
        r["prompt_tps"] = float(metric)
    summary = summarize(runs_frame(rows), ["cache_limit"])
    assert list(summary.columns) == ["cache_limit", *SUMMARY_COLUMNS, "prompt_tps_median"]
    slow, fast = summary.iloc[0], summary.iloc[1]
    assert (slow["runs"], slow["failed"], slow["unit"]) == (5, 1, "tokens")
    assert slow["throughput_median"] == 2.5 and slow["throughput_iqr"] == 1.5
    assert (slow["throughput_q1"], slow["throughput_q3"]) == (1.75, 3.25)
    assert (slow["throughput_ci_low"], slow["throughput_ci_high"]) == (1.0, 4.0)
    assert slow["seconds_median"] == 1.0
    assert slow["peak_memory_max"] == 50 and slow["footprint"] == 55  # the failed run counts for memory
    assert slow["prompt_tps_median"] == 6.5  # metrics of successful runs only
    assert fast["throughput_median"] == 11.0 and fast["footprint"] == 900_040
    assert fast["cache_after_max"] == 900_000 and fast["process_rss_max"] == 100 * MB


def test_summarize_groups_by_every_axis_and_keeps_all_failed_points():
    rows = [row(c, 5.0 + c, i, batch=b) for c in (0, 1) for b in (4, 1) for i in range(2)]
    rows += [row(2, 0.0, i, batch=1, error="ValueError: bad") for i in range(2)]
    summary = summarize(runs_frame(rows, ["batch"]), ["cache_limit", "batch"])
    assert list(summary[["cache_limit", "batch"]].itertuples(index=False, name=None)) == [
        (0, 1), (0, 4), (1, 1), (1, 4), (2, 1)]
    failed = summary.iloc[-1]
    assert failed["failed"] == 2 and math.isnan(failed["throughput_median"])
    assert summarize(runs_frame([]), ["cache_limit"]).empty
    with pytest.raises(ValueError, match="no column 'dtype'"):
        summarize(runs_frame(rows, ["batch"]), ["cache_limit", "dtype"])
