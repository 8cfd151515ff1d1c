"""The decision rule: which cache limit is as fast as the best, when the data shows it.

Numbers only (words live in :mod:`mlxtune.view`). Deterministic: the same runs give the same answer.

The rule
--------
A point is **fast** when the one-sided ``confidence`` lower bound (``pick_confidence``, 99%, in the
paired design: see below) of its speed ratio to the best point clears ``1 - tolerance`` by the edge
(:func:`edge`: half the tolerance, at most 2.5% of the best's speed; 0.975 at 5%), so the data must
*show* it is close; **slow** when the upper bound is
below ``1 - tolerance``; **at the edge** when both bounds lie within the edge of ``1 - tolerance``
either way (0.925-0.975 at 5%); **undecided** otherwise. The recommendation is the smallest cache
limit (then the smallest footprint) among the fast points inside the budget; it is *decided* when
every point with a smaller cache limit is slow or at the edge. Noise never makes a point fast: with
too few runs every interval is wide, points stay undecided, and the answer says how many more rounds
would likely decide them.

Why the edge: a limit whose true speed sits at the tolerance (the H200's 1MB at 0.93-0.98 of the
best, BENCHMARKS.md) can never be shown on one side of it, and would keep every answer open. The
edge is an indifference zone (Bechhofer's, in ranking and selection): a point pinned within it costs
about the tolerance, which side it falls on matters less than the edge, and it stops keeping the
answer open. It is never picked: a point is picked only when shown clear of the zone. When "fast"
meant only a lower bound above ``1 - tolerance``, such a point raced two verdicts, fast (a sweep
whose cycles happened to put its lower bound above the line) or at the edge (one whose cycles pinned
it first): on the H200, sweeps of one sitting picked 1MB in two of five and 4MB in the others
(BENCHMARKS.md). With the edge between them, a point inside the zone is at the edge in every sweep,
and only a point whose speed sits at the zone's top (0.975) can go either way.

How the interval is made
------------------------
- The speed of a point is a quantile of its runs' throughputs (``statistic``; the median by
  default), on the log scale so ratios are differences.
- Runs are blocked by round (every point runs once per round, in a shuffled order): the bootstrap
  resamples whole rounds, so a round that was slow for every point (the machine was busy) moves
  them together and cancels out of their ratios, as in F-Race's blocked comparisons.
- More cache should not make MLX slower, so within a curve (every other grid axis fixed) the
  speeds are fitted as a nondecreasing function of the cache limit (isotonic regression, weighted
  by runs): neighbouring points borrow strength from each other. Where the data says otherwise
  (more cache shown slower by more than the tolerance: the 99% upper bound of the ratio below
  ``1 - tolerance``, as under memory pressure, mlx issue #3129) the violation is reported and that
  curve is not pooled.
- The interval is the percentile bootstrap of the fitted ratio to the best point, with a fixed seed.

Paired within runs (``paired=True``, :mod:`mlxtune.paired`): the rows are blocks and a round is a
cycle, in which every point ran one block inside the same run. Each point is compared with the best
within the cycles both ran: the ratio is the median of those per-cycle ratios, and its bounds are
the order statistics a sign test allows (``sign_bounds``: no assumption about the ratios'
distribution, so at least 5 cycles at 95%). A run's speed state, which moves a whole cycle
together, cancels in each ratio; when the state changes inside a cycle, that cycle's ratio is far
off, and the median with its order-statistic bounds stays honest where a bootstrap of a few cycles
was seen (H200 blocks, BENCHMARKS.md) to call a 4MB limit slow and a 1MB limit fast wrongly. No
monotone pooling here: every point has its own direct evidence. ``speed`` stays the blocks' own
median speed, for display.

A paired point is shown fast by its lower bound at :data:`PICK_CONFIDENCE` (99%), not 95%: a paired
sweep judges its blocks after every cycle or every few and runs on until decided (up to hundreds of
looks: :class:`mlxtune.paired.Pace`), and stops at the first look that shows a point fast. A 95% bound
looked at that often is crossed by chance far more often than one time in twenty: replayed on the saved
H200 sweeps (``benchmarks/paired_replay.py``, generations drawn from all of them), 2 of 100 sweeps
picked a 1MB limit that all their blocks pooled put at 0.957 of unlimited, inside the edge; at 99%, none
did. Slow and at the edge end no sweep on a pick of their own and keep 95%.

Why these choices (measured by ``benchmarks/decision_quality.py`` on the saved GPU sweeps, whose
runs fall into two speed states that last a whole run; the same truth, each limit's median over the
whole sweep fitted to be nondecreasing, judged every variant): with the median and the monotone
pooling, no pick was more than the tolerance below the best and the two halves of a sweep agreed
in 91% of splits (94% before fast had to clear the edge); the geometric mean (it averages the two
states) made wrong picks, and an upper quantile (``timeit``'s argument for the fastest run: noise
only slows) agreed less often, since a run's speed state, not the cache, sets its maximum. Three
rounds gave wrong picks with every statistic, hence :data:`MIN_ROUNDS`. On that host ten rounds show
no limit below the largest to be within 5% of the best: the rule says so, and which points are open,
instead of guessing.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "CONFIDENCE", "MIN_ROUNDS", "PICK_CONFIDENCE",
    "Decision", "FleetChoice", "NextRound", "Noise", "decide", "fleet_choice",
    "isotonic", "judged_runs", "least_runs", "nan_quantile", "next_round", "noise", "sign_bounds",
]

#: One-sided confidence of the bounds the rule compares with ``1 - tolerance``.
CONFIDENCE = 0.95
#: One-sided confidence of the lower bound that shows a point fast in the paired design, which looks
#: after cycle after cycle (module docstring).
PICK_CONFIDENCE = 0.99
#: Fewer successful runs than this per point decide nothing: with three, a bootstrap has ten distinct
#: samples and its bounds are not bounds (on the saved GPU sweeps, 3-round subsamples gave wrong picks).
MIN_ROUNDS = 4
#: Confidence that more cache is slower before the monotone pooling is dropped for a curve: higher than
#: ``CONFIDENCE``, since speed states make a lucky point look faster than its larger neighbours.
VIOLATION_CONFIDENCE = 0.99
_BOOTSTRAP = 2000
#: Resampled rounds held at once (values), so a sweep of thousands of rounds stays small in memory.
_BOOTSTRAP_CHUNK = 4_000_000
#: Runs the drift line is fitted through, at most (evenly spaced in run order).
_DRIFT_FIT_RUNS = 1000
_SEED = 20261202
#: More rounds than this to decide a point is reported as "too close to the tolerance to decide".
_MOST_ROUNDS = 1000

#: Verdicts of a point, as stored in :attr:`Decision.points` ``verdict``.
#: How much slower than the fastest a recommended limit may be, unless a caller says otherwise.
TOLERANCE = 0.05

FAST, SLOW, UNDECIDED, OVER_BUDGET, NO_RUNS = "fast", "slow", "undecided", "over budget", "no runs"
EDGE = "at the edge"
#: The verdicts of points the rule judged (measured enough, inside the budget).
JUDGED = (FAST, SLOW, EDGE, UNDECIDED)
#: How close to ``1 - tolerance`` both bounds must be for a point to sit at the edge, and how far above
#: it a fast point's lower bound must be (module docstring): this share of the tolerance, ...
EDGE_SHARE = 0.5
#: ... and at most this much of the best's speed: the edge is what cannot be told in a time worth
#: waiting (the H200's 1MB moved by 2 to 3% between sittings), not a share of any tolerance, so a
#: wide tolerance asks no more than this beyond it.
EDGE_MOST = 0.025


def edge(tolerance: float) -> float:
    """The edge's width either side of ``1 - tolerance``: half the tolerance, at most :data:`EDGE_MOST`."""
    return min(tolerance * EDGE_SHARE, EDGE_MOST)


@dataclasses.dataclass(frozen=True)
class Noise:
    """How steady the runs were: numbers the view puts into words.

    ``spread``: the largest ratio between the fastest and slowest run of one point (1.0 when steady).
    ``states``: how many times faster the fast state is than the slow one when runs fall into two
    groups, else None. ``drift``: the fitted change of speed from the first run to the last (0.1:
    10% faster at the end), with ``drift_p`` its p-value.
    """

    spread: float
    states: float | None
    drift: float
    drift_p: float
    runs: int

    @property
    def spread_wide(self) -> bool:
        """Whether runs at one limit differ by more than a steady machine's noise."""
        return self.spread > 1.25

    @property
    def drifted(self) -> bool:
        """Whether speed moved from the first run to the last by more than 5%, beyond doubt (p < 0.01)."""
        return self.drift_p < 0.01 and abs(self.drift) > 0.05

    @property
    def busy(self) -> bool:
        """Whether the runs vary enough that the machine was most likely busy (or the workload varies)."""
        return self.spread_wide or self.states is not None or self.drifted


@dataclasses.dataclass(frozen=True)
class Decision:
    """The rule's answer for one sweep.

    ``points``: one row per grid point, the parameter columns then ``runs`` (successful),
    ``speed`` (the statistic, units/s), ``ratio``, ``ratio_low``, ``ratio_high`` (fitted speed over
    the best's, with its bounds), ``verdict`` (fast, slow, at the edge, undecided, over budget, no runs),
    ``more_rounds`` (rounds that would likely decide an undecided point; NaN otherwise, inf when it
    sits at the tolerance), ``footprint``, ``pick_low`` (the lower bound at ``pick_confidence`` that
    must clear the edge for the point to be fast; ``ratio_low`` for whole runs). ``choice`` is the
    index in ``points`` of the recommended point (None when no point is shown fast), ``best`` that of
    the fastest; ``decided`` is True when no point with a smaller cache limit than the choice is
    undecided (each is slow or at the edge).
    ``violations`` lists pairs of points (smaller limit, larger limit, ratio larger/smaller, its upper
    bound) where more cache was shown slower. ``paired``: the rows were blocks of the paired design,
    so ``runs`` counts blocks and a round is a cycle.
    """

    points: pd.DataFrame
    params: list[str]
    choice: int | None
    best: int | None
    decided: bool
    tolerance: float
    confidence: float
    budget: int | None
    statistic: float | str
    violations: list[tuple[int, int, float, float]]
    noise: Noise
    #: True when the rows were blocks compared within their cycle (the paired design), not whole runs.
    paired: bool = False
    #: The confidence of ``pick_low``: :data:`PICK_CONFIDENCE` for the paired design, else ``confidence``.
    pick_confidence: float = CONFIDENCE

    @property
    def compared(self) -> bool:
        """Whether there was anything to compare: a sweep of one point can recommend nothing."""
        return len(self.points) > 1

    @property
    def all_fast(self) -> bool:
        """Whether the answer is decided with every judged point (two or more) shown fast: the limit does
        not measurably matter here."""
        judged = self.points[self.points["verdict"].isin(JUDGED)]
        return self.decided and len(judged) > 1 and bool((judged["verdict"] == FAST).all())

    @property
    def nothing_fits(self) -> bool:
        """Whether every measured point is over the budget: no limit can be recommended within it."""
        measured = self.points[self.points["verdict"] != NO_RUNS]
        return bool(len(measured)) and bool((measured["verdict"] == OVER_BUDGET).all())

    @property
    def undecided(self) -> pd.DataFrame:
        """The points that keep the answer open: undecided, and (with a choice) below its cache limit."""
        rows = self.points[self.points["verdict"] == UNDECIDED]
        if self.choice is not None:
            rows = rows[rows["cache_limit"] < self.points.loc[self.choice, "cache_limit"]]
        return rows

    @property
    def more_rounds(self) -> float:
        """Rounds that would likely decide every point still open (0 when decided)."""
        open_points = self.undecided
        return float(open_points["more_rounds"].max()) if len(open_points) else 0.0


def isotonic(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The nondecreasing weighted least-squares fit of each row of ``values`` (the last axis).

    Uses the minimax formula fit[i] = max over j <= i of min over k >= i of mean(values[j..k]),
    vectorised over the leading axes (thousands of bootstrap samples of a dozen points at once).
    NaN values carry no weight.
    """
    values = np.asarray(values, dtype=float)
    w = np.where(np.isnan(values), 0.0, np.broadcast_to(weights, values.shape))
    wy = np.where(np.isnan(values), 0.0, values) * w
    lead, n = values.shape[:-1], values.shape[-1]
    cw = np.concatenate([np.zeros((*lead, 1)), np.cumsum(w, axis=-1)], axis=-1)
    cwy = np.concatenate([np.zeros((*lead, 1)), np.cumsum(wy, axis=-1)], axis=-1)
    j, k = np.triu_indices(n)
    means = np.full((*lead, n, n), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        means[..., j, k] = (cwy[..., k + 1] - cwy[..., j]) / (cw[..., k + 1] - cw[..., j])
    lower = np.tril(np.ones((n, n), dtype=bool), -1)
    means = np.where(lower, np.inf, np.where(np.isnan(means), np.inf, means))
    tail_min = np.flip(np.minimum.accumulate(np.flip(means, -1), axis=-1), -1)  # min over k >= i, per j
    tail_min = np.where(lower, -np.inf, tail_min)
    fit = np.max(tail_min, axis=-2)
    return np.where(np.isfinite(fit), fit, np.nan)


def decide(
    runs: pd.DataFrame,
    summary: pd.DataFrame,
    params: Sequence[str],
    *,
    tolerance: float = TOLERANCE,
    budget: int | None = None,
    confidence: float = CONFIDENCE,
    statistic: float | str = 0.5,
    paired: bool = False,
    pick_confidence: float = PICK_CONFIDENCE,
) -> Decision:
    """Apply the rule (module docstring) to a runs frame and its summary (:func:`mlxtune.stats.summarize`).

    The summary gives the points, in its order, and each one's ``footprint``, the number a budget
    (bytes) is held against. ``paired``: the rows are blocks of the paired design, compared within
    their cycle (``repeat``); a point is then shown fast at ``pick_confidence`` (default
    :data:`PICK_CONFIDENCE`; whole runs use ``confidence``).
    """
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must be a fraction in [0, 1), not {tolerance!r}")
    for name, value in (("confidence", confidence), ("pick_confidence", pick_confidence)):
        if not 0.5 <= value < 1:
            raise ValueError(f"{name} must be in [0.5, 1), not {value!r}")
    pick_confidence = pick_confidence if paired else confidence
    params = list(params)
    table = _Table(runs, summary[params], statistic, tolerance)
    points = table.points.copy()
    points["footprint"] = summary["footprint"].to_numpy(dtype=float)
    fits = pd.Series(True, index=points.index) if budget is None else points["footprint"].le(budget)
    enough = points["runs"] >= least_runs(paired, confidence)
    candidates = np.flatnonzero((fits & enough).to_numpy())
    points["ratio"] = points["ratio_low"] = points["ratio_high"] = points["pick_low"] = np.nan
    points["verdict"] = np.where(points["runs"] == 0, NO_RUNS, np.where(fits, UNDECIDED, OVER_BUDGET))
    points["more_rounds"] = np.nan
    best = choice = None
    violations: _Pairs = []
    if len(candidates):
        if paired:
            top, ratio, low, high, pick_low, violations = table.paired(candidates, confidence, tolerance,
                                                                       pick_confidence)
        else:
            top, ratio, low, high, violations = table.bootstrapped(enough.to_numpy(), candidates, confidence)
            pick_low = low
        best = int(points.index[top])
        floor, margin = 1 - tolerance, edge(tolerance)
        for i in candidates:
            verdict = _verdict(low[i], high[i], floor, margin, pick_low[i])
            points.iloc[i, points.columns.get_loc("verdict")] = verdict
            if verdict == UNDECIDED:
                points.iloc[i, points.columns.get_loc("more_rounds")] = _more_rounds(
                    ratio[i], low[i], high[i], floor, margin, int(points["runs"].iloc[i]))
        points.loc[points.index[candidates], "ratio"] = ratio[candidates]
        points.loc[points.index[candidates], "ratio_low"] = low[candidates]
        points.loc[points.index[candidates], "ratio_high"] = high[candidates]
        points.loc[points.index[candidates], "pick_low"] = pick_low[candidates]
        fast = points[points["verdict"] == FAST]
        if len(fast):
            choice = int(fast.sort_values(["cache_limit", "footprint"], kind="stable").index[0])
    decided = choice is not None and not (
        (points["verdict"] == UNDECIDED) & (points["cache_limit"] < points.loc[choice, "cache_limit"])
    ).any()
    return Decision(
        points=points, params=params, choice=choice, best=best, decided=decided, tolerance=tolerance,
        confidence=confidence, budget=budget, statistic=statistic,
        violations=[(int(points.index[a]), int(points.index[b]), r, h) for a, b, r, h in violations],
        noise=noise(runs, params), paired=paired, pick_confidence=pick_confidence,
    )


def least_runs(paired: bool, confidence: float = CONFIDENCE) -> int:
    """The fewest successful runs (blocks, paired) a point needs before the rule judges it."""
    return max(MIN_ROUNDS, _sign_test_least(confidence)) if paired else MIN_ROUNDS


def _sign_test_least(confidence: float) -> int:
    """The fewest values whose extreme is a one-sided ``confidence`` bound of their median (5 at 95%)."""
    return math.ceil(math.log(1 - confidence) / math.log(0.5))


def sign_bounds(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """One-sided ``confidence`` bounds of the median of ``values`` (NaNs ignored), free of any
    distribution: the order statistics a sign test allows (the r-th smallest and largest, r the most
    with P(Binomial(n, 1/2) <= r - 1) <= 1 - confidence). Infinite when there are too few values."""
    from scipy import stats

    data = np.sort(values[~np.isnan(values)])
    n = len(data)
    rank = int(np.sum(stats.binom.cdf(np.arange(n), n, 0.5) <= 1 - confidence)) if n else 0
    if rank == 0:
        return -math.inf, math.inf
    return float(data[rank - 1]), float(data[n - rank])


def _verdict(low: float, high: float, floor: float, margin: float, pick_low: float) -> str:
    """A point's verdict from the bounds of its ratio (module docstring): slow below ``floor``, fast when
    ``pick_low`` clears the edge above it, at the edge when pinned within ``margin`` of it, else
    undecided."""
    if high < floor:
        return SLOW
    if pick_low >= floor + margin:
        return FAST
    if floor - margin <= low and high <= floor + margin:
        return EDGE
    return UNDECIDED


def _more_rounds(ratio: float, low: float, high: float, floor: float, margin: float, rounds: int) -> float:
    """Rounds to add so the point would likely be decided, whichever verdict comes first: its lower
    bound clearing the edge (an estimate above it), its upper bound falling below ``floor`` (an
    estimate below), or both bounds closing in to the edge (an estimate within it). Interval
    half-widths shrink as one over the square root of the rounds.
    """
    if not (math.isfinite(low) and math.isfinite(high)):
        return math.inf
    needed = []
    if ratio > floor + margin:
        needed.append(rounds * ((ratio - low) / (ratio - floor - margin)) ** 2)
    if ratio < floor:
        needed.append(rounds * ((high - ratio) / (floor - ratio)) ** 2)
    room = margin - abs(ratio - floor)
    if room > 0:
        needed.append(rounds * (max(ratio - low, high - ratio) / room) ** 2)
    more = math.ceil(min(needed)) - rounds if needed else math.inf
    return float(max(more, 1)) if more <= _MOST_ROUNDS else math.inf


_Pairs = list[tuple[int, int, float, float]]


#: How a run that hit its timeout is recorded (:mod:`mlxtune.sweep`).
TIMED_OUT = "TimeoutError:"


def judged_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs the rule judges: the successful ones, and those that hit their timeout, which are
    evidence of slowness, not of nothing. A timed-out run's ``throughput`` is the sweep's typical units
    of work (the median of its successful runs) over the time it took, at least the timeout: no faster
    than it could have been, where dropping it would have left only its point's fast runs."""
    timed_out = runs["error"].str.startswith(TIMED_OUT)
    judged = runs[(runs["error"] == "") | timed_out].copy()
    late = timed_out[judged.index]
    if late.any():
        typical = runs.loc[runs["error"] == "", "units"].median()
        took = judged.loc[late, ["seconds", "wall_seconds"]].max(axis=1)
        judged.loc[late, "throughput"] = typical / took
    return judged[np.isfinite(judged["throughput"]) & (judged["throughput"] > 0)]


class _Table:
    """The runs as a rounds x points matrix of log throughput, per curve, with the point statistics."""

    def __init__(self, runs: pd.DataFrame, keys: pd.DataFrame, statistic: float | str,
                 tolerance: float) -> None:
        self.statistic, self.tolerance = statistic, tolerance
        params = list(keys.columns)
        ok = judged_runs(runs)
        self.points = keys.reset_index(drop=True)
        index = pd.MultiIndex.from_frame(self.points) if len(params) > 1 else pd.Index(self.points[params[0]])
        counts = ok.groupby(params, sort=False, dropna=False).size()
        self.points["runs"] = counts.reindex(index).fillna(0).astype(int).to_numpy()
        # the index finds a grid value of null (NaN once in a frame) as a dict of keys would not
        ok_keys = pd.MultiIndex.from_frame(ok[params]) if len(params) > 1 else pd.Index(ok[params[0]])
        column = index.get_indexer(ok_keys)
        rounds = pd.factorize(ok["repeat"], sort=True)[0]  # round numbers as given may have gaps
        self.matrix = np.full((int(rounds.max()) + 1 if len(rounds) else 0, len(self.points)), np.nan)
        self.matrix[rounds, column] = np.log(ok["throughput"].to_numpy(dtype=float))
        others = [p for p in params if p != "cache_limit"]
        groups = (self.points.groupby(others, sort=False, dropna=False).indices if others
                  else {(): self.points.index})
        limits = self.points["cache_limit"].to_numpy()
        self.curves = [np.array(sorted(rows, key=lambda i: limits[i])) for rows in groups.values()]
        self.points["speed"] = np.exp(self._stat(self.matrix[None]))[0]

    def _stat(self, data: np.ndarray) -> np.ndarray:
        """The statistic of each point over the rounds axis (axis 1) of ``data`` (log throughputs)."""
        if self.statistic == "mean":
            count = np.sum(~np.isnan(data), axis=1)
            total = np.nansum(data, axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(count > 0, total / count, np.nan)
        return nan_quantile(data, self.statistic, axis=1)

    def bootstrapped(self, usable: np.ndarray, candidates: np.ndarray,
                     confidence: float) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, _Pairs]:
        """Whole runs: the best candidate, each point's fitted speed over the best's and its bounds (the
        bootstrap over rounds of the monotone fit), and the violations."""
        estimate, samples, violations = self.fitted(usable)
        top = int(candidates[np.nanargmax(estimate[candidates])])
        with np.errstate(invalid="ignore"):
            ratio = np.exp(estimate - estimate[top])
            sample_ratio = np.exp(samples - np.nanmax(samples[:, candidates], axis=1, keepdims=True))
        alpha = 1 - confidence
        return (top, ratio, nan_quantile(sample_ratio, alpha, axis=0),
                nan_quantile(sample_ratio, 1 - alpha, axis=0), violations)

    def paired(self, candidates: np.ndarray, confidence: float, tolerance: float,
               pick_confidence: float) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, _Pairs]:
        """Blocks compared within cycles: the best candidate (:meth:`_paired_best`, a point shown faster
        than the reference at ``pick_confidence``), then each point's median ratio to the best over the
        cycles both ran, with sign-test bounds at ``confidence`` and the lower one at ``pick_confidence``,
        and the pairs where more cache was shown slower (at 99%).

        Blocks inside one run still differ when the machine's state changes within a cycle, so a
        cycle's ratio can be far off; the median and its order-statistic bounds hold whatever the
        ratios' distribution, where a bootstrap of few cycles was seen to call points wrongly.
        """
        top = self._paired_best(candidates, pick_confidence)
        ratio, low, high = self._within_cycles(top, candidates, confidence)
        pick_low = self._within_cycles(top, candidates, pick_confidence)[1]
        violations: _Pairs = []
        for curve in self.curves:
            for position, a in enumerate(curve):
                for b in curve[position + 1:]:
                    gain = self.matrix[:, b] - self.matrix[:, a]
                    if np.sum(~np.isnan(gain)) < _sign_test_least(VIOLATION_CONFIDENCE):
                        continue
                    upper = float(np.exp(sign_bounds(gain, VIOLATION_CONFIDENCE)[1]))
                    if upper < 1 - tolerance:
                        found = float(np.exp(nan_quantile(gain, 0.5, axis=0)))
                        violations.append((int(a), int(b), found, upper))
        return top, ratio, low, high, pick_low, violations

    def _within_cycles(self, top: int, candidates: np.ndarray,
                       confidence: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each candidate's median ratio to ``top`` over the cycles both ran, with its sign bounds."""
        width = self.matrix.shape[1]
        ratio, low, high = np.full(width, np.nan), np.full(width, np.nan), np.full(width, np.nan)
        for i in candidates:
            against = self.matrix[:, i] - self.matrix[:, top]
            ratio[i] = np.exp(nan_quantile(against, 0.5, axis=0)) if i != top else 1.0
            low[i], high[i] = np.exp(sign_bounds(against, confidence)) if i != top else (1.0, 1.0)
        return ratio, low, high

    def _paired_best(self, candidates: np.ndarray, confidence: float) -> int:
        """The point the others are compared with: the reference (the largest limit, in every cycle),
        unless a candidate is shown faster than it (its lower sign bound at ``confidence`` above 1);
        then the fastest of those. The highest median among a few noisy points is the luckiest, not
        the fastest: comparing with it would call every point slower than it is, and over only the
        cycles it ran. ``confidence`` is the pick's (99%), for the same reason: the switch is looked
        for at every judgment, and on an H200 a 16MB limit that all sweeps' blocks put level with
        unlimited (1.000) was shown faster at 95% after 145 cycles of one sweep, became the
        reference, and left 4MB open against it until the sweep's time ran out (BENCHMARKS.md)."""
        counts = np.sum(~np.isnan(self.matrix), axis=0)
        limits = self.points["cache_limit"].to_numpy(dtype=float)
        # the reference runs in every cycle; where others did too, it is the largest limit of them
        anchor = int(np.lexsort((limits, counts))[-1])
        gain = self.matrix - self.matrix[:, [anchor]]
        relative = nan_quantile(gain, 0.5, axis=0)
        if anchor not in candidates:  # over the budget: the fastest of what fits
            return int(candidates[np.nanargmax(relative[candidates])])
        faster = [int(i) for i in candidates if i != anchor and sign_bounds(gain[:, i], confidence)[0] > 0]
        return max(faster, key=lambda i: relative[i]) if faster else anchor

    def fitted(self, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray, _Pairs]:
        """Point estimates and bootstrap samples of the (monotone where allowed) log speed per point.

        The bootstrap resamples whole rounds; a point that a resample leaves without runs (it was
        raced out of later rounds) is resampled over its own runs instead.
        """
        rng = np.random.default_rng(_SEED)
        rounds, width = self.matrix.shape
        samples = np.full((_BOOTSTRAP, width), np.nan)
        step = max(1, _BOOTSTRAP_CHUNK // max(rounds * width, 1))
        for start in range(0, _BOOTSTRAP if rounds else 0, step):
            drawn = rng.integers(0, rounds, size=(min(step, _BOOTSTRAP - start), rounds))
            samples[start:start + len(drawn)] = self._stat(self.matrix[drawn])
        samples = np.where(np.isnan(samples), self._own_samples(rng), samples)
        raw = np.where(usable, self._stat(self.matrix[None])[0], np.nan)
        samples = np.where(usable, samples, np.nan)
        estimate, fitted = raw.copy(), samples.copy()
        violations: _Pairs = []
        weights = self.points["runs"].to_numpy(dtype=float)
        for curve in self.curves:
            found = self._violations(curve, raw, samples)
            violations += found
            if not found and len(curve) > 1:
                estimate[curve] = isotonic(raw[curve], weights[curve])
                fitted[:, curve] = isotonic(samples[:, curve], weights[curve])
        return estimate, fitted, violations

    def _own_samples(self, rng: np.random.Generator) -> np.ndarray:
        """Each point resampled over its own runs."""
        out = np.full((_BOOTSTRAP, self.matrix.shape[1]), np.nan)
        for i, column in enumerate(self.matrix.T):
            values = column[~np.isnan(column)]
            if len(values):
                drawn = values[rng.integers(0, len(values), size=(_BOOTSTRAP, len(values)))]
                out[:, i] = self._stat(drawn[..., None])[:, 0]
        return out

    def _violations(self, curve: np.ndarray, raw: np.ndarray, samples: np.ndarray) -> _Pairs:
        """Pairs in a curve where more cache is shown slower by more than the tolerance."""
        found = []
        for position, a in enumerate(curve):
            for b in curve[position + 1:]:
                if np.isnan(raw[a]) or np.isnan(raw[b]):
                    continue
                gain = samples[:, b] - samples[:, a]
                high = float(np.exp(nan_quantile(gain, VIOLATION_CONFIDENCE, axis=0)))
                if high < 1 - self.tolerance:
                    found.append((int(a), int(b), float(np.exp(raw[b] - raw[a])), high))
        return found


def nan_quantile(data: np.ndarray, q: float, axis: int) -> np.ndarray:
    """``np.nanquantile`` (linear interpolation) by one sort, without its per-slice Python loop.

    NaN where a slice has no values. Thousands of bootstrap samples take milliseconds this way.
    """
    ordered = np.sort(np.moveaxis(np.asarray(data, dtype=float), axis, -1), axis=-1)  # NaNs sort last
    if ordered.shape[-1] == 0:
        return np.full(ordered.shape[:-1], np.nan)
    count = np.sum(~np.isnan(ordered), axis=-1)
    position = q * np.maximum(count - 1, 0)
    below = np.floor(position).astype(int)
    above = np.minimum(below + 1, np.maximum(count - 1, 0))
    low = np.take_along_axis(ordered, below[..., None], axis=-1)[..., 0]
    high = np.take_along_axis(ordered, above[..., None], axis=-1)[..., 0]
    value = low + (high - low) * (position - below)
    return np.where(count > 0, value, np.nan)


def noise(runs: pd.DataFrame, params: Sequence[str]) -> Noise:
    """How much runs of the same point differ, whether they fall into two speed states, and drift."""
    ok = runs[(runs["error"] == "") & np.isfinite(runs["throughput"]) & (runs["throughput"] > 0)]
    if len(ok) < 2:
        return Noise(spread=1.0, states=None, drift=0.0, drift_p=1.0, runs=len(ok))
    logs = np.log(ok["throughput"].to_numpy(dtype=float))
    groups = ok.groupby(list(params), sort=False, dropna=False)["throughput"]
    center = np.log(groups.transform("median").to_numpy(dtype=float))
    fastest = np.log(groups.transform("max").to_numpy(dtype=float))
    spread = float(np.exp(groups.agg(lambda s: np.log(s.max()) - np.log(s.min())).max()))
    drift, drift_p = _drift(ok, logs - center)
    return Noise(spread=spread, states=_states(logs - fastest), drift=drift, drift_p=drift_p, runs=len(ok))


def _states(below_fastest: np.ndarray) -> float | None:
    """How far apart two speed states are, when each run's log speed below its point's fastest run
    splits at one gap much wider than the spread on either side (a point whose runs are all in one
    state sits at 0 with the fast ones); None when there is no such gap."""
    values = np.sort(below_fastest)
    n = len(values)
    if n < 8:
        return None
    gaps = np.diff(values)
    low_end, high_start = math.ceil(0.2 * n), math.floor(0.8 * n)
    best = None
    # Only gaps wide enough on their own are weighed against the spread (two medians each), so
    # a sweep of thousands of runs with no such gap costs one pass.
    wide = np.flatnonzero(gaps > max(math.log(1.1), 4 * 0.01))
    for i in wide[(wide >= max(low_end - 1, 0)) & (wide < min(high_start, n - 1))]:
        lower, upper = values[: i + 1], values[i + 1:]
        within = max(_mad(lower), _mad(upper), 0.01)
        if gaps[i] > 4 * within and (best is None or gaps[i] > best[0]):
            best = (gaps[i], float(np.exp(np.median(upper) - np.median(lower))))
    return None if best is None else best[1]


def _mad(values: np.ndarray) -> float:
    return float(np.median(np.abs(values - np.median(values)))) * 1.4826 if len(values) else 0.0


def _drift(ok: pd.DataFrame, residual: np.ndarray) -> tuple[float, float]:
    """The change of speed over the sweep from a line through the residuals in run order, and its p-value."""
    from scipy import stats

    if "started_at" not in ok or len(ok) < 6:
        return 0.0, 1.0
    order = np.argsort(ok["started_at"].to_numpy(dtype=float), kind="stable")
    position = np.empty(len(order))
    position[order] = np.linspace(0.0, 1.0, len(order))
    if np.ptp(residual) == 0:
        return 0.0, 1.0
    if len(order) > _DRIFT_FIT_RUNS:  # Theil-Sen weighs every pair: thin evenly in run order
        kept = order[np.linspace(0, len(order) - 1, _DRIFT_FIT_RUNS).round().astype(int)]
        position, residual = position[kept], residual[kept]
    fit = stats.theilslopes(residual, position)
    rho = stats.spearmanr(position, residual)
    return float(np.expm1(fit.slope)), float(rho.pvalue) if np.isfinite(rho.pvalue) else 1.0


# -- adaptive sweeps: which points the next round needs -----------------------------------------


@dataclasses.dataclass(frozen=True)
class NextRound:
    """What an adaptive sweep does next: the points (indices into ``Decision.points``) to run in the
    next round, or none and ``stop`` saying why."""

    points: list[int]
    stop: str = ""


def next_round(decision: Decision, rounds: int, max_rounds: int, give_up: bool = True) -> NextRound:
    """Racing: run only the points that can still change the answer, and stop when none can.

    After ``rounds`` rounds (of at most ``max_rounds``): before :data:`MIN_ROUNDS` every point runs.
    Then the answer is final when decided. Otherwise the open points (undecided, below the current
    choice) run, with the best and the choice to keep the comparison current; a point decided slow,
    or fast above the choice, stops. With ``give_up`` (whole runs, where a round costs a run per
    point), an open point that would need more rounds than those left is given up on (it sits too
    close to the tolerance for this budget), and when every open point is given up the sweep stops,
    undecided, rather than spend the budget for nothing. A paired sweep runs on until decided or out
    of budget: a cycle costs a fraction of a second, and the estimate of the rounds needed takes a
    point's estimate for its truth, which gave up after 2 s of H200 blocks on a 1MB limit that a
    few seconds more decided (``benchmarks/paired_replay.py``).
    """
    everything = [int(i) for i in decision.points.index[decision.points["verdict"] != OVER_BUDGET]]
    if rounds < MIN_ROUNDS:
        return NextRound(everything)
    if decision.decided:
        return NextRound([], "decided")
    left = max_rounds - rounds
    if left <= 0:
        return NextRound([], "the budget of runs or time was spent")
    open_points = decision.undecided
    # a point with too few successful runs yet (a run failed) has no estimate: it needs rounds, not judging
    hopeful = [int(i) for i, more in open_points["more_rounds"].items()
               if more <= left or math.isnan(more) or not give_up]
    if not hopeful:
        return NextRound([], "the open points need more rounds than the budget allows")
    anchors = {i for i in (decision.best, decision.choice) if i is not None}
    return NextRound(sorted(set(hopeful) | anchors))


@dataclasses.dataclass(frozen=True)
class FleetChoice:
    """The rule across hosts: one setting for every host (see :func:`fleet_choice`).

    ``point`` is the chosen grid point (parameter -> value; None when no point is fast on every
    host), ``verdicts`` one row per shared point and a column per host (the verdict of that host's
    decision, so a budget per host shows as "over budget"), ``decided`` True when no smaller cache
    limit could still turn out fast on every host; ``open_limits`` are those smaller cache limits.
    ``missing`` names the hosts without a decision.
    """

    point: dict[str, Any] | None
    verdicts: pd.DataFrame
    decided: bool
    missing: list[str]
    open_limits: list[int] = dataclasses.field(default_factory=list)


def fleet_choice(decisions: Mapping[str, Decision | None]) -> FleetChoice:
    """The smallest cache limit (then the first other setting) that every host shows fast.

    Each host's decision already holds its own budget, so a point over any host's budget is never
    chosen. A host without a decision (None: it gave no result) or without a successful point
    leaves the fleet without an answer: a limit never measured on a device is not shipped to it.
    The answer is decided when each smaller shared point is shown slow or over budget on at least
    one host; a smaller point that is fast or undecided on every host keeps it open.
    """
    present = {host: d for host, d in decisions.items() if d is not None and d.best is not None}
    missing = [host for host in decisions if host not in present]
    params = next(iter(present.values())).params if present else ["cache_limit"]
    verdicts: pd.DataFrame | None = None
    for host, found in present.items():
        column = found.points[[*params, "verdict"]].rename(columns={"verdict": host})
        verdicts = column if verdicts is None else verdicts.merge(column, on=params, how="inner")
    if verdicts is None or missing or verdicts.empty:
        return FleetChoice(None, verdicts if verdicts is not None else pd.DataFrame(columns=params), False,
                           missing)
    verdicts = verdicts.sort_values(params, kind="stable").reset_index(drop=True)
    hosts = verdicts[list(present)]
    fast = (hosts == FAST).all(axis=1)
    open_ = (hosts.isin([FAST, UNDECIDED])).all(axis=1) & ~fast
    if not fast.any():
        return FleetChoice(None, verdicts, False, missing)
    chosen = int(np.flatnonzero(fast.to_numpy())[0])
    below = verdicts["cache_limit"] < verdicts.loc[chosen, "cache_limit"]
    point = dict(zip(params, verdicts.loc[chosen, params].tolist(), strict=True))  # Python scalars
    still = verdicts.loc[open_ & below, "cache_limit"].astype(int).tolist()
    return FleetChoice(point, verdicts, decided=not still, missing=missing, open_limits=still)
