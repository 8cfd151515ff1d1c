"""How good the recommendation is: today's rule and the evidence rule side by side on the saved GPU sweeps.

    python benchmarks/decision_quality.py            # CPU only, about two minutes

Every saved GPU sweep (benchmarks/results/gpu/) is resampled by whole rounds (a round runs every
cache limit once, so rounds are the unit of a sweep):

- split halves: the rounds of a 10-round sweep cut into two random halves of 5; each half asks for
  a recommendation. A pick is *wrong* when its speed, by the whole sweep, is more than the tolerance
  below the best's; two halves *agree* when they pick the same limit, or limits whose speeds (by the
  whole sweep) are within the tolerance of each other, or both say they cannot tell yet.
- subsamples of 3, 5 and 10 rounds: wrong picks and how often the rule is decided.
- adaptive: the rounds replayed in a random order through the adaptive sweep's racing
  (``decision.next_round``): runs used, and whether it ends on the 10-round answer.

"By the whole sweep" means, from every round: each limit's median throughput, fitted as a
nondecreasing function of the limit (more cache is not slower); the lines marked "raw medians"
judge by the unfitted medians instead, which the speed states of this host make noisy. The same
truth judges both rules.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

from _common import RESULTS, publish

from mlxtune import decision
from mlxtune.fleet_result import load
from mlxtune.record import runs_frame
from mlxtune.result import SweepResult
from mlxtune.stats import ratio_ci, summarize

TOLERANCE = 0.05
DRAWS = 20
GPU = RESULTS / "gpu"


def sweeps() -> dict[str, SweepResult]:
    """Every saved GPU sweep of decode throughput over cache limits, by name (run/file)."""
    found: dict[str, SweepResult] = {}
    for pattern in ("*/gpu_sweep-*.json", "*/gpu_evidence-reference.json"):
        for path in sorted(GPU.glob(pattern)):
            found[f"{path.parent.name}/{path.stem.split('-', 1)[1]}"] = load(path)
    for path in sorted(GPU.glob("*/gpu_sweep-*.csv")):
        name = f"{path.parent.name}/{path.stem.removeprefix('gpu_sweep-')}"
        if name not in found:  # a sweep kept as CSV only
            runs = pd.read_csv(path, keep_default_na=False, na_values=[""])
            runs["error"] = runs["error"].fillna("").astype(str)
            found[name] = SweepResult(runs=runs_frame(runs.to_dict("records")), params=["cache_limit"],
                                      unit="tokens")
    return found


def rounds_of(result: SweepResult, picked: np.ndarray) -> pd.DataFrame:
    """The runs of the chosen rounds, renumbered 0.. in the order given."""
    runs = result.runs[result.runs["repeat"].isin(picked)].copy()
    runs["repeat"] = runs["repeat"].map({int(r): i for i, r in enumerate(picked)})
    return runs


def decide(runs: pd.DataFrame) -> decision.Decision:
    return decision.decide(runs, summarize(runs, ["cache_limit"]), ["cache_limit"], tolerance=TOLERANCE)


def new_rule(runs: pd.DataFrame) -> int | None:
    """The evidence rule's pick: the smallest limit shown within the tolerance of the best."""
    found = decide(runs)
    return None if found.choice is None else int(found.points.loc[found.choice, "cache_limit"])


def new_decided(runs: pd.DataFrame) -> bool:
    return decide(runs).decided


def old_rule(runs: pd.DataFrame) -> int | None:
    """The rule before: the smallest limit whose runs cannot be told from the best's, or whose median
    is within the tolerance of the best median (the ratio interval of Mann-Whitney reaching 1)."""
    ok = runs[runs["error"] == ""]
    groups = {int(k): g["throughput"].to_numpy() for k, g in ok.groupby("cache_limit")}
    medians = {k: float(np.median(v)) for k, v in groups.items()}
    top = max(medians, key=medians.get)
    for limit in sorted(groups):
        same = ratio_ci(groups[limit], groups[top])[2] >= 1
        if same or medians[limit] >= (1 - TOLERANCE) * medians[top]:
            return limit
    return top


@dataclass
class Truth:
    """Each limit's speed over the best's by the whole sweep: pooled (the rule's estimate) and raw medians."""

    pooled: dict[int, float]
    raw: dict[int, float]

    @classmethod
    def of(cls, result: SweepResult) -> Truth:
        """From every run: each limit's median, and the nondecreasing fit of the medians (by runs)."""
        ok = result.runs[result.runs["error"] == ""].groupby("cache_limit")["throughput"]
        medians, counts = ok.median().sort_index(), ok.size().sort_index()
        fitted = np.exp(decision.isotonic(np.log(medians.to_numpy()), counts.to_numpy(dtype=float)))
        limits = [int(k) for k in medians.index]
        pooled = dict(zip(limits, fitted / fitted.max(), strict=True))
        raw = dict(zip(limits, medians.to_numpy() / medians.max(), strict=True))
        return cls(pooled, raw)

    def wrong(self, pick: int | None, raw: bool = False) -> bool:
        speeds = self.raw if raw else self.pooled
        return pick is not None and speeds[pick] < 1 - TOLERANCE

    def agree(self, a: int | None, b: int | None) -> bool:
        if a is None or b is None:
            return a is b
        return a == b or abs(self.pooled[a] - self.pooled[b]) <= TOLERANCE


def adaptive(result: SweepResult, order: np.ndarray) -> tuple[int, int | None, str]:
    """Replay the rounds in ``order`` through the adaptive sweep's racing: (runs used, pick, why stopped)."""
    limits = sorted(int(v) for v in result.runs["cache_limit"].unique())
    taken: list[pd.DataFrame] = []
    found = None
    running = list(range(len(limits)))
    for done, original in enumerate(order):
        this_round = result.runs[(result.runs["repeat"] == original)
                                 & result.runs["cache_limit"].isin([limits[i] for i in running])].copy()
        this_round["repeat"] = done
        taken.append(this_round)
        runs = pd.concat(taken, ignore_index=True)
        found = decide(runs)
        step = decision.next_round(found, done + 1, len(order))
        if step.stop:
            break
        running = step.points
    used = sum(len(t) for t in taken)
    pick = None if found is None or found.choice is None else int(found.points.loc[found.choice,
                                                                                   "cache_limit"])
    return used, pick, step.stop


@dataclass
class Tally:
    """Counts over all sweeps, for the last lines."""

    split: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(7, dtype=int))
    pairs: int = 0
    sub: dict[int, np.ndarray] = dataclasses.field(default_factory=dict)
    adaptive: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(4, dtype=int))


def split_halves(result: SweepResult, truth: Truth, rng: np.random.Generator, tally: Tally) -> str:
    """Two random halves of the rounds, each asked for a pick by both rules."""
    rounds = np.sort(result.runs["repeat"].unique())
    counts = np.zeros(7, dtype=int)
    for _ in range(DRAWS):
        shuffled = rng.permutation(rounds)
        halves = [np.sort(shuffled[: len(rounds) // 2]), np.sort(shuffled[len(rounds) // 2:])]
        old = [old_rule(rounds_of(result, h)) for h in halves]
        new = [new_rule(rounds_of(result, h)) for h in halves]
        counts += [sum(map(truth.wrong, old)), sum(map(truth.wrong, new)), truth.agree(*old),
                   truth.agree(*new), sum(p == 0 for p in old), sum(truth.wrong(p, raw=True) for p in old),
                   sum(truth.wrong(p, raw=True) for p in new)]
    tally.split += counts
    tally.pairs += DRAWS
    return (f"   split halves: wrong picks old {counts[0]}/{2 * DRAWS} (cache 0: {counts[4]}), new "
            f"{counts[1]}/{2 * DRAWS}; raw medians: old {counts[5]}, new {counts[6]}; halves agree old "
            f"{counts[2]}/{DRAWS}, new {counts[3]}/{DRAWS}")


def subsamples(result: SweepResult, truth: Truth, rng: np.random.Generator, tally: Tally) -> list[str]:
    """Random subsets of 3, 5 and 10 rounds: wrong picks of both rules, and how often the new one decides."""
    rounds = np.sort(result.runs["repeat"].unique())
    lines = []
    for size in (3, 5, 10):
        if size > len(rounds):
            continue
        draws = 1 if size == len(rounds) else DRAWS
        counts = np.zeros(4, dtype=int)
        for _ in range(draws):
            runs = rounds_of(result, np.sort(rng.choice(rounds, size=size, replace=False)))
            counts += [truth.wrong(old_rule(runs)), truth.wrong(new_rule(runs)), new_decided(runs), 1]
        tally.sub[size] = tally.sub.get(size, np.zeros(4, dtype=int)) + counts
        lines.append(f"   {size:>2} rounds: wrong picks old {counts[0]}/{draws}, new {counts[1]}/{draws}; "
                     f"new decided {counts[2]}/{draws}")
    return lines


def adaptive_replays(result: SweepResult, truth: Truth, rng: np.random.Generator, tally: Tally) -> str:
    """The rounds replayed in random orders through the adaptive sweep, against the 10 rounds' answer."""
    ten = dataclasses.replace(result, runs=rounds_of(result, np.sort(result.runs["repeat"].unique())[:10]))
    rounds = np.arange(10)
    reference = new_rule(ten.runs)
    used = same = 0
    reasons: dict[str, int] = {}
    for _ in range(DRAWS):
        runs_used, pick, why = adaptive(ten, rng.permutation(rounds))
        used += runs_used
        same += truth.agree(pick, reference)
        reasons[why] = reasons.get(why, 0) + 1
    fixed = len(ten.runs)
    tally.adaptive += [used, DRAWS * fixed, same, DRAWS]
    stopped = "; ".join(f"{why or 'all rounds'} ({n})" for why, n in reasons.items())
    return (f"   adaptive: {used / DRAWS:.0f} runs on average against {fixed} for 10 rounds "
            f"({used / DRAWS / fixed:.0%}); same answer as 10 rounds in {same}/{DRAWS}; stopped: {stopped}")


def main() -> None:
    rng = np.random.default_rng(0)
    tally = Tally()
    lines = [f"Tolerance {TOLERANCE:.0%}; {DRAWS} random draws per line; sweeps of benchmarks/results/gpu/.",
             ""]
    for name, result in sweeps().items():
        rounds = result.runs["repeat"].nunique()
        truth = Truth.of(result)
        lines.append(f"== {name}: {rounds} rounds x {result.runs['cache_limit'].nunique()} limits")
        speeds = ", ".join(f"{_size(k)} {v:.2f}" for k, v in sorted(truth.pooled.items()))
        lines.append(f"   by the whole sweep: {speeds}")
        if rounds >= 10:
            lines.append(split_halves(result, truth, rng, tally))
        lines += subsamples(result, truth, rng, tally)
        if rounds >= 10:
            lines.append(adaptive_replays(result, truth, rng, tally))
        lines.append("")
    split = tally.split
    lines.append("== All sweeps")
    lines.append(f"split halves: wrong picks old {split[0]}, new {split[1]} (raw medians: old {split[5]}, "
                 f"new {split[6]}); halves agree old {split[2]}, new {split[3]} of {tally.pairs} pairs "
                 f"({split[3] / max(tally.pairs, 1):.0%})")
    for size, (wrong_old, wrong_new, decided, draws) in sorted(tally.sub.items()):
        lines.append(f"{size:>2} rounds: wrong picks old {wrong_old}/{draws}, new {wrong_new}/{draws}; "
                     f"decided {decided}/{draws}")
    used, fixed, same, draws = tally.adaptive
    lines.append(f"adaptive: {used / fixed:.0%} of the runs of 10 rounds; same answer in {same}/{draws}")
    publish("decision_quality.txt", "\n".join(lines))


def _size(limit: int) -> str:
    from mlxtune.units import format_size

    return format_size(limit)


if __name__ == "__main__":
    main()
