"""Statistics of a sweep: per-point summaries, the best point, intervals and significance.

The recommendation's rule is in :mod:`mlxtune.decision`; words for both in :mod:`mlxtune.view`.

Takes frames, never MLX. Everything here is deterministic: the same runs give the same numbers.

Summary columns (a contract: plots, reports and front ends read these names)
-----------------------------------------------------------------------------
:func:`summarize` returns one row per grid point, sorted by the parameters, with columns in this
order:

- the parameter columns (``cache_limit`` first, then every other swept axis), as in the runs frame;
- ``unit``: what throughput counts (e.g. "tokens");
- ``runs``: runs of the point, failed ones included; ``failed``: runs with a non-empty ``error``;
- ``throughput_median``, ``throughput_q1``, ``throughput_q3``, ``throughput_iqr`` (q3 - q1):
  over the successful runs (NaN when none succeeded);
- ``throughput_ci_low``, ``throughput_ci_high``: a distribution-free 95% confidence interval of the
  median from order statistics (the binomial method, :func:`median_ci`); with fewer than 6 runs no
  pair of order statistics reaches 95%, and the interval is the full range (min..max), whose
  coverage is 1 - 2**(1-n) (75% for 3 runs);
- ``seconds_median``: median measured seconds of the successful runs;
- ``peak_memory_max``: largest MLX peak active memory of any run, bytes;
- ``cache_after_max``: largest MLX cache held at the end of any run, bytes;
- ``footprint``: max over runs of ``footprint_peak``, the largest MLX active + cache sampled while a
  run went on (at least its peak active memory), bytes: what the process needed from MLX's
  allocator at its worst moment, the number budgets and recommendations hold against a limit;
- ``process_rss_max``: largest resident memory of the process after a run (the OS's view), bytes;
- ``process_peak_max``: largest process memory sampled during any run (on macOS the physical
  footprint, which jetsam counts), bytes;
- ``footprint_above_start``: max over runs of ``footprint_peak`` less the active + cache memory held
  when the run started (mostly a model's weights), bytes: the part of the footprint a cache limit
  can change;
- then ``<metric>_median`` for each extra numeric column a workload reported (e.g. prompt tokens/s).

Memory columns cover every run, failed ones too: a run that failed by running out of memory still
shows how much it took.

A paired sweep (:mod:`mlxtune.paired`) is summarized by :func:`summarize_paired`: the same columns,
``runs`` and the speed columns over its blocks, the memory columns from its whole runs where a point
had any and from its blocks elsewhere, and one more column, ``memory_from`` ("runs" or "blocks").
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from mlxtune.record import MEASURED_COLUMNS

__all__ = [
    "SUMMARY_COLUMNS",
    "is_significant",
    "median_ci",
    "ratio_ci",
    "run_footprints",
    "summarize",
    "summarize_paired",
    "u_null_cdf",
]

#: The summary's measured columns, after the parameter columns (see the module docstring).
SUMMARY_COLUMNS: tuple[str, ...] = (
    "unit",
    "runs",
    "failed",
    "throughput_median",
    "throughput_q1",
    "throughput_q3",
    "throughput_iqr",
    "throughput_ci_low",
    "throughput_ci_high",
    "seconds_median",
    "peak_memory_max",
    "cache_after_max",
    "footprint",
    "process_rss_max",
    "process_peak_max",
    "footprint_above_start",
)


def _scipy_stats() -> ModuleType:
    """scipy.stats, imported on first use: it takes most of a second, and importing mlxtune should not."""
    from scipy import stats

    return stats


def _clean(values: Sequence[float] | np.ndarray | pd.Series) -> np.ndarray:
    data = np.asarray(values, dtype=float)
    return np.sort(data[np.isfinite(data)])


def median_ci(
    values: Sequence[float] | np.ndarray | pd.Series, confidence: float = 0.95
) -> tuple[float, float]:
    """A distribution-free confidence interval of the median from order statistics.

    The number of values below the true median is Binomial(n, 1/2); the interval runs from the
    l-th to the (n-l+1)-th smallest value, with l the largest rank whose two tails together stay
    within ``1 - confidence``. With too few values for that (n < 6 at 95%) it is the full range.
    NaNs are ignored; no values give (NaN, NaN).
    """
    data = _clean(values)
    n = len(data)
    if n == 0:
        return (math.nan, math.nan)
    alpha = 1.0 - confidence
    # smallest k with P(B <= k) >= alpha/2, so P(B <= k-1) < alpha/2: rank k (1-based) is safe.
    rank = max(int(_scipy_stats().binom.ppf(alpha / 2, n, 0.5)), 1)
    return (float(data[rank - 1]), float(data[n - rank]))


def is_significant(a: Sequence[float], b: Sequence[float], alpha: float = 0.05) -> bool:
    """Whether two samples differ by a two-sided Mann-Whitney U test at level ``alpha``.

    Rank-based, so one outlier run cannot make a difference. NaNs are ignored; fewer than two
    values on either side is never significant. Mind the small-sample floor: with 3 runs against
    3 the smallest possible p-value is 0.1, so at least 4 against 4 are needed to reach 0.05.
    """
    x, y = _clean(a), _clean(b)
    if len(x) < 2 or len(y) < 2:
        return False
    if np.ptp(np.concatenate([x, y])) == 0:
        return False
    return bool(_scipy_stats().mannwhitneyu(x, y, alternative="two-sided").pvalue < alpha)


def ratio_ci(
    a: Sequence[float], b: Sequence[float], confidence: float = 0.95
) -> tuple[float, float, float]:
    """How many times larger ``a`` is than ``b``: (estimate, low, high).

    The Hodges-Lehmann estimate on the log scale (the median of all pairwise ``log a_i - log b_j``,
    turned back into a ratio) with the distribution-free interval that goes with the Mann-Whitney
    test: exact critical values up to 40 values in all, a normal approximation beyond. Positive
    values only; NaNs ignored. With too few values for the requested confidence the interval spans
    all pairwise ratios (for 3 against 3 that covers 90%).
    """
    x, y = _clean(a), _clean(b)
    x, y = x[x > 0], y[y > 0]
    if len(x) == 0 or len(y) == 0:
        return (math.nan, math.nan, math.nan)
    diffs = np.sort(np.subtract.outer(np.log(x), np.log(y)).ravel())
    k = _rank_bound(len(x), len(y), (1 - confidence) / 2)
    low, high = np.exp(diffs[k]), np.exp(diffs[len(diffs) - 1 - k])
    return (float(np.exp(np.median(diffs))), float(low), float(high))


def _rank_bound(m: int, n: int, tail: float) -> int:
    """0-based index into the m*n sorted pairwise differences where the interval starts.

    The largest C with P(U <= C - 1) <= ``tail`` under no difference gives the bound D(C); at
    least C = 1, the smallest difference.
    """
    if m + n <= 40:
        found = int(np.searchsorted(u_null_cdf(m, n), tail, side="right"))
    else:
        z = _scipy_stats().norm.ppf(1 - tail)
        found = math.floor(m * n / 2 - z * math.sqrt(m * n * (m + n + 1) / 12)) + 1
    return max(found, 1) - 1


def u_null_cdf(m: int, n: int) -> np.ndarray:
    """P(U <= u), u = 0..m*n, for the Mann-Whitney U of m against n values that do not differ.

    The counts of each U are the coefficients of the Gaussian binomial coefficient
    [m+n choose m] in q: the product over i = 1..m of (1 - q^(n+i)) / (1 - q^i). Exact in floats
    while C(m+n, m) < 2**53, i.e. up to 40 values in all with an even split.
    """
    size = m * n + 1
    counts = np.zeros(size)
    counts[0] = 1.0
    for i in range(1, m + 1):
        # divide by (1 - q^i): a running sum with stride i, i.e. a cumsum down the columns of i-wide rows
        padded = np.concatenate([counts, np.zeros(-size % i)])
        counts = padded.reshape(-1, i).cumsum(axis=0).ravel()[:size]
        counts[n + i :] -= counts[: size - n - i].copy()  # multiply by (1 - q^(n+i))
    return np.cumsum(counts) / counts.sum()


# -- summaries ----------------------------------------------------------------------------------


def _metric_columns(runs: pd.DataFrame, params: Sequence[str]) -> list[str]:
    known = {*params, *MEASURED_COLUMNS, "cache_limit"}
    return [c for c in runs.columns if c not in known and pd.api.types.is_numeric_dtype(runs[c])]


def run_footprints(runs: pd.DataFrame) -> pd.Series:
    """Each run's footprint: the largest MLX active + cache sampled while it ran, bytes."""
    return runs["footprint_peak"]


def _summarize_point(group: pd.DataFrame, metrics: list[str]) -> dict[str, Any]:
    ok = group[group["error"] == ""]
    throughput = _clean(ok["throughput"])
    low, high = median_ci(throughput)
    q1, median, q3 = (
        (float(v) for v in np.percentile(throughput, [25, 50, 75])) if len(throughput) else (math.nan,) * 3
    )
    units = ok["unit"] if len(ok) else group["unit"]
    row: dict[str, Any] = {
        "unit": str(units.mode().iloc[0]) if len(units) else "",
        "runs": len(group),
        "failed": int((group["error"] != "").sum()),
        "throughput_median": median,
        "throughput_q1": q1,
        "throughput_q3": q3,
        "throughput_iqr": q3 - q1,
        "throughput_ci_low": low,
        "throughput_ci_high": high,
        "seconds_median": float(ok["seconds"].median()) if len(ok) else math.nan,
        "peak_memory_max": int(group["peak_memory"].max()),
        "cache_after_max": int(group["cache_after"].max()),
        "footprint": int(run_footprints(group).max()),
        "process_rss_max": int(group["process_rss"].max()),
        "process_peak_max": int(group["process_peak"].max()),
        "footprint_above_start": int(
            (run_footprints(group) - group["active_before"] - group["cache_before"]).max()),
    }
    for name in metrics:
        row[f"{name}_median"] = float(ok[name].median()) if len(ok) else math.nan
    return row


def summarize(runs: pd.DataFrame, params: Sequence[str]) -> pd.DataFrame:
    """One row per grid point of a runs frame; columns as the module docstring lists them."""
    params = list(params) or ["cache_limit"]
    missing = [p for p in params if p not in runs.columns]
    if missing:
        raise ValueError(f"the runs frame has no column {missing[0]!r}; its columns are {list(runs.columns)}")
    metrics = _metric_columns(runs, params)
    columns = [*params, *SUMMARY_COLUMNS, *(f"{m}_median" for m in metrics)]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for key, group in runs.groupby(params, sort=False, dropna=False):
        values = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(params, values, strict=True)), **_summarize_point(group, metrics)})
    frame = pd.DataFrame(rows, columns=columns)
    with contextlib.suppress(TypeError):  # an axis mixing types that do not compare: keep run order
        frame = frame.sort_values(params, kind="stable", ignore_index=True)
    return frame


#: The summary's memory columns: what a paired sweep takes from whole runs where it has them.
MEMORY_COLUMNS = ("peak_memory_max", "cache_after_max", "footprint", "process_rss_max", "process_peak_max",
                  "footprint_above_start")


def summarize_paired(blocks: pd.DataFrame, runs: pd.DataFrame, params: Sequence[str]) -> pd.DataFrame:
    """The summary of a paired sweep: speed over the blocks; memory from the whole runs at a point when
    it has some (a real run at that limit), else what its blocks held and sampled; ``memory_from``
    says which. A block runs beside a generation's live state, so a point's block footprint is not
    a whole run's peak: the view says so."""
    params = list(params) or ["cache_limit"]
    summary = summarize(blocks, params)
    summary["memory_from"] = "blocks"
    if runs.empty or summary.empty:
        return summary
    whole = summarize(runs, params)[[*params, *MEMORY_COLUMNS]]
    found = summary[params].merge(whole, on=params, how="left")  # keeps the summary's rows and order
    has = found[list(MEMORY_COLUMNS)].notna().all(axis=1).to_numpy()
    for name in MEMORY_COLUMNS:
        measured = np.where(has, found[name].fillna(0).to_numpy(), summary[name].to_numpy())
        summary[name] = measured.astype(np.int64)
    summary.loc[has, "memory_from"] = "runs"
    return summary
