"""Statistics of a sweep: per-point summaries, the best point, a recommendation, significance.

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
- ``footprint``: max over runs of ``peak_memory + cache_after``, bytes: what the process needs
  from MLX's allocator at worst, the number to hold against a memory budget;
- ``process_rss_max``: largest resident memory of the process (the OS's view), bytes;
- then ``<metric>_median`` for each extra numeric column a workload reported (e.g. prompt tokens/s).

Memory columns cover every run, failed ones too: a run that failed by running out of memory still
shows how much it took.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlxtune.measure import MEASURED_COLUMNS
from mlxtune.units import UNLIMITED, format_size, parse_size

if TYPE_CHECKING:
    from mlxtune.result import SweepResult

__all__ = [
    "SUMMARY_COLUMNS",
    "Recommendation",
    "best",
    "describe_point",
    "is_significant",
    "median_ci",
    "ratio_ci",
    "recommend",
    "run_footprints",
    "summarize",
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
    """Each run's footprint: its peak active memory plus the cache it held at the end, bytes."""
    return runs["peak_memory"] + runs["cache_after"]


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


def best(summary: pd.DataFrame) -> pd.Series:
    """The summary row with the highest median throughput; ValueError when no run succeeded."""
    medians = summary["throughput_median"] if "throughput_median" in summary else pd.Series(dtype=float)
    if medians.notna().sum() == 0:
        raise ValueError("no successful runs to choose from: every run failed or none was measured")
    return summary.loc[medians.idxmax()]


# -- recommendation -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """Which cache limit to ship, and why.

    ``cache_limit`` is None when nothing can be recommended (no successful runs, or nothing fits
    the budget); ``reason`` then says why. ``within_noise`` is True when every measured point's
    throughput is indistinguishable from the best one's: the cache limit does not measurably
    matter for this workload on this machine.
    """

    cache_limit: int | None
    params: dict[str, Any]
    throughput: float
    footprint: int | None
    reason: str
    within_noise: bool = False
    unit: str = "runs"
    budget: int | None = None

    @property
    def found(self) -> bool:
        return self.cache_limit is not None

    @property
    def python_code(self) -> str:
        """The line that applies this limit in Python."""
        if self.cache_limit is None:
            return "# no cache limit recommended: " + self.reason
        if self.cache_limit >= UNLIMITED:
            return "mx.set_cache_limit(2**63 - 1)  # unlimited"
        return f"mx.set_cache_limit({self.cache_limit})  # {format_size(self.cache_limit)}"

    @property
    def swift_code(self) -> str:
        """The line that applies this limit in an app using MLX Swift."""
        if self.cache_limit is None:
            return "// no cache limit recommended: " + self.reason
        if self.cache_limit >= UNLIMITED:
            return "MLX.Memory.cacheLimit = Int.max  // unlimited"
        return f"MLX.Memory.cacheLimit = {self.cache_limit:_}  // {format_size(self.cache_limit)}"

    def __str__(self) -> str:
        return self.reason


def describe_point(row: pd.Series, params: Sequence[str]) -> str:
    """A grid point in words: "cache limit 16MB, memory limit 1GB, dtype=q4"."""
    parts = []
    for name in params:
        value = row[name]
        if name in ("cache_limit", "memory_limit"):
            parts.append(f"{name.replace('_', ' ')} {format_size(int(value))}")
        else:
            parts.append(f"{name}={value}")
    return ", ".join(parts)


def _overlaps(row: pd.Series, top: pd.Series) -> bool:
    low, high = row["throughput_ci_low"], row["throughput_ci_high"]
    return bool(high >= top["throughput_ci_low"] and top["throughput_ci_high"] >= low)


class _Sameness:
    """Decides whether a point's throughput is distinguishable from the best point's.

    With the raw runs (a SweepResult) it asks whether the 95% interval of the throughput ratio,
    point over best (:func:`ratio_ci`, the interval that inverts the two-sided Mann-Whitney test),
    reaches 1: if it does, the runs cannot tell the point from the best. With a summary frame only
    it falls back to overlapping per-point intervals, which is stricter about calling a difference.
    """

    def __init__(self, runs: pd.DataFrame | None, params: list[str]) -> None:
        self.params = params
        self.samples: dict[tuple[Any, ...], np.ndarray] = {}
        if runs is not None and len(runs):
            ok = runs[runs["error"] == ""]
            for key, group in ok.groupby(params, sort=False, dropna=False):
                self.samples[key if isinstance(key, tuple) else (key,)] = group["throughput"].to_numpy()

    @property
    def uses_runs(self) -> bool:
        return bool(self.samples)

    def same(self, row: pd.Series, top: pd.Series) -> bool:
        if not self.uses_runs:
            return _overlaps(row, top)
        mine, best_runs = self._runs(row), self._runs(top)
        if row.name == top.name or len(mine) == 0 or len(best_runs) == 0:
            return row.name == top.name
        _, _, high = ratio_ci(mine, best_runs)
        return bool(high >= 1)

    def _runs(self, row: pd.Series) -> np.ndarray:
        key = tuple(_plain(row[p]) for p in self.params)
        return self.samples.get(key, np.array([]))

    def wording(self, fewest: int) -> tuple[str, str]:
        """How the reason sentence names the comparison: (singular, plural)."""
        if self.uses_runs:
            return ("runs are not distinguishable from the best one's (95% interval of the speed ratio "
                    "reaches 1)", "runs are not distinguishable from the best one's")
        if fewest >= 6:
            return ("95% confidence interval overlaps the best one's",
                    "95% confidence intervals overlap the best one's")
        # below 6 runs the "95% CI" is the range of the runs (see median_ci): say what was compared
        return ("range of runs overlaps the best one's", "ranges of runs overlap the best one's")


def _summary_and_params(
    source: SweepResult | pd.DataFrame,
) -> tuple[pd.DataFrame, list[str], pd.DataFrame | None]:
    if isinstance(source, pd.DataFrame):
        if "unit" not in source.columns or "cache_limit" not in source.columns:
            raise ValueError("recommend() takes a SweepResult or a summary frame with cache_limit and unit")
        return source, list(source.columns[: list(source.columns).index("unit")]), None
    return source.summary(), list(source.params), source.runs


def recommend(
    source: SweepResult | pd.DataFrame, budget: int | str | None = None, tolerance: float = 0.05
) -> Recommendation:
    """The smallest cache limit as fast as the best, within noise or ``tolerance``, inside ``budget``.

    Rule: a point counts as fast as the best when its runs cannot be told from the best point's,
    or its median is within ``tolerance`` (a fraction) of the best median. "Cannot be told" means
    the 95% interval of the throughput ratio point/best (:func:`ratio_ci`, Hodges-Lehmann with the
    interval of the two-sided Mann-Whitney test) reaches 1. At 3 runs a side that interval spans
    every pairwise ratio, so a point is called slower only when all its runs are slower than all
    the best's; with more repeats it separates points whose ranges still overlap. Given a summary
    frame without runs, overlapping per-point intervals (:func:`median_ci`) stand in for it.
    The best is taken among the points whose ``footprint`` fits ``budget`` (bytes or a size such
    as "2GB"). Among the points that qualify, the smallest cache limit wins, then the smallest
    footprint. ``source`` is a SweepResult or a frame from :func:`summarize`.
    """
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must be a fraction in [0, 1), not {tolerance!r}")
    limit = None if budget is None else parse_size(budget)
    summary, params, runs = _summary_and_params(source)
    sameness = _Sameness(runs, params)
    measured = summary[summary["throughput_median"].notna()]
    unit = str(measured["unit"].iloc[0]) if len(measured) else "runs"
    if measured.empty:
        reason = "No recommendation: no run succeeded."
        return Recommendation(None, {}, math.nan, None, reason, unit=unit, budget=limit)
    fits = measured if limit is None else measured[measured["footprint"] <= limit]
    if fits.empty:
        smallest = measured.loc[measured["footprint"].idxmin()]
        reason = (
            f"Nothing fits the budget of {format_size(limit)}: the smallest footprint measured is "
            f"{format_size(int(smallest['footprint']))} ({describe_point(smallest, params)})."
        )
        return Recommendation(None, {}, math.nan, int(smallest["footprint"]), reason, unit=unit, budget=limit)
    top = best(fits)
    same = measured.apply(lambda row: sameness.same(row, top), axis=1)  # once per point: a ratio_ci each
    close = same.loc[fits.index] | (fits["throughput_median"] >= (1 - tolerance) * top["throughput_median"])
    chosen = fits[close].sort_values(["cache_limit", "footprint"], kind="stable").iloc[0]
    within_noise = bool(same.all()) and len(measured) > 1
    reason = _reason(chosen, top, measured, fits, params, unit, limit, tolerance, within_noise, sameness)
    point = {p: _plain(chosen[p]) for p in params if p != "cache_limit"}
    return Recommendation(
        cache_limit=int(chosen["cache_limit"]),
        params=point,
        throughput=float(chosen["throughput_median"]),
        footprint=int(chosen["footprint"]),
        reason=reason,
        within_noise=within_noise,
        unit=unit,
        budget=limit,
    )


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _reason(
    chosen: pd.Series,
    top: pd.Series,
    measured: pd.DataFrame,
    fits: pd.DataFrame,
    params: list[str],
    unit: str,
    limit: int | None,
    tolerance: float,
    within_noise: bool,
    sameness: _Sameness,
) -> str:
    """One or two plain sentences: what was chosen, against what, and how sure we are."""
    fewest = int((measured["runs"] - measured["failed"]).min())
    same_one, same_all = sameness.wording(fewest)
    what = describe_point(chosen, params)
    head = what[0].upper() + what[1:]
    speed = f"{chosen['throughput_median']:.4g} {unit}/s"
    footprint = format_size(int(chosen["footprint"]))
    if within_noise:
        text = (
            f"All {len(measured)} points are within the noise of each other (their {same_all}), "
            f"so {'the cache limit does' if len(params) == 1 else 'these settings do'} "
            f"not measurably change throughput here; the smallest, {what}, is recommended ({speed}, "
            f"footprint {footprint})."
        )
    elif chosen.name == top.name:
        figures = f"({speed}, footprint {footprint})"
        if (fits["cache_limit"] < chosen["cache_limit"]).any():
            text = f"{head} is the fastest {figures}; no smaller cache limit comes close."
        else:
            text = f"{head} is the fastest and the smallest limit measured {figures}."
    else:
        ratio = chosen["throughput_median"] / top["throughput_median"]
        how = f"its {same_one}" if sameness.same(chosen, top) else (
            f"it is within {tolerance:.0%} of the best"
        )
        text = (
            f"{head} gives {speed} ({ratio:.1%} of the best, {describe_point(top, params)} at "
            f"{top['throughput_median']:.4g} {unit}/s) with footprint {footprint}: {how}."
        )
    if fewest < 2:
        text += " Only one successful run per point: the noise is unknown; measure with repeats >= 3."
    if limit is not None and len(fits) < len(measured):
        over = len(measured) - len(fits)
        text += f" {over} of {len(measured)} points exceed the budget of {format_size(limit)}."
    return text
