"""The paired rule replayed on saved H200 generations: how often an adaptive sweep decides, and on what.

    python benchmarks/paired_replay.py            # CPU only, about six minutes

A sitting on the GPU host gives five sweeps, one draw of each. This replays hundreds, from what the
saved paired sweeps of 6-step blocks with picks at 95% and 99% measured (``benchmarks/results/gpu/run13``
to ``run16``, ``paired-*.json``): their blocks grouped into generations (one generation is one prompt
and its decoded tokens, so what a generation does to a limit's cost stays together), for the limits every
generation ran (1MB, 4MB and unlimited: 0 and 256KB are slow in every cycle). Each replayed sweep
draws generations at random and feeds their cycles, in order, to the shipped rule
(:func:`mlxtune.decision.decide` on the blocks, :func:`mlxtune.decision.next_round` for racing and
stopping), as the engine does: no verdict before a whole generation, a block counted at its own
measured seconds, racing dropping a limit once decided, at most ``--seconds`` of blocks.

It prints, for a pick shown by the 95% lower bound (as before) and by the 99% one
(:data:`mlxtune.decision.PICK_CONFIDENCE`, now), each with generations drawn from every saved sweep
pooled and with generations drawn from one sweep at a time (which keeps what made that sweep's
limits cost what they did: a 1MB limit read 0.93 in some sweeps and 0.98 in others): the share of
sweeps decided, the picks, the seconds of blocks to the answer, and the chance that five sweeps in a
row all decide on the same pick (the sitting's goal), estimated as the share deciding on the most
common pick to the fifth power.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

from _common import RESULTS, publish

from mlxtune import load
from mlxtune.decision import CONFIDENCE, PICK_CONFIDENCE, TOLERANCE, decide, next_round
from mlxtune.record import runs_frame
from mlxtune.sweep import DEFAULT_MAX_CYCLES
from mlxtune.units import UNLIMITED, limit_text

GPU = RESULTS / "gpu"
SOURCES = ("run13/paired-*.json", "run14/paired-*.json", "run15/paired-*.json", "run16/paired-*.json")
LIMITS = (1_000_000, 4_000_000, UNLIMITED)


@dataclass(frozen=True)
class Generation:
    """One saved generation: per cycle, each limit's block speed and seconds."""

    speed: np.ndarray  # cycles x limits, units/s
    seconds: np.ndarray  # cycles x limits


def generations() -> list[list[Generation]]:
    """Every saved generation whose cycles ran all of :data:`LIMITS` (at least 3 such cycles), by sweep."""
    found = []
    for pattern in SOURCES:
        for path in sorted(GPU.glob(pattern)):
            found.append([])
            blocks = load(path).speed_rows
            blocks = blocks[blocks["error"] == ""]
            for _, generation in blocks.groupby("generation"):
                table = generation.pivot_table(index="repeat", columns="cache_limit",
                                               values=["throughput", "wall_seconds"], aggfunc="first")
                complete = table.dropna()
                if all(limit in table["throughput"].columns for limit in LIMITS) and len(complete) >= 3:
                    found[-1].append(Generation(complete["throughput"][list(LIMITS)].to_numpy(),
                                                complete["wall_seconds"][list(LIMITS)].to_numpy()))
    return [sweep for sweep in found if sweep]


def replay(pool: list[Generation], rng: np.random.Generator, max_cycles: int, seconds: float,
           pick_confidence: float) -> tuple[bool, int | None, float]:
    """One adaptive sweep on generations drawn from ``pool``: (decided, pick, seconds of blocks);
    ``pick_confidence`` as :func:`mlxtune.decision.decide` takes it."""
    rows: list[dict[str, object]] = []
    running, spent, cycle, completed = set(range(len(LIMITS))), 0.0, 0, False
    summary = pd.DataFrame({"cache_limit": list(LIMITS), "footprint": 0.0})
    while True:
        generation = pool[rng.integers(len(pool))]
        for position in range(len(generation.speed)):
            for column in sorted(running | {len(LIMITS) - 1}):
                rows.append({"cache_limit": LIMITS[column], "repeat": cycle, "error": "",
                             "throughput": float(generation.speed[position, column])})
                spent += float(generation.seconds[position, column])
            cycle += 1
            completed = completed or position == len(generation.speed) - 1
            if not completed:
                continue  # no verdict before a whole generation is measured
            decision = decide(runs_frame(rows), summary, ["cache_limit"], tolerance=TOLERANCE, paired=True,
                              pick_confidence=pick_confidence)
            choice = None if decision.choice is None else int(decision.points["cache_limit"][decision.choice])
            step = next_round(decision, cycle, max_cycles, give_up=False)
            if step.stop or spent >= seconds:
                return decision.decided, choice, spent
            running = {LIMITS.index(int(decision.points.loc[i, "cache_limit"])) for i in step.points}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweeps", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--max-cycles", type=int, default=DEFAULT_MAX_CYCLES)
    args = parser.parse_args()
    sweeps = generations()
    pooled = [generation for sweep in sweeps for generation in sweep]
    cycles = np.concatenate([g.speed for g in pooled])
    ratio = np.exp(np.median(np.log(cycles[:, :-1] / cycles[:, -1:]), axis=0))
    shown = ", ".join(f"{limit_text(limit)} {value:.3f}"
                      for limit, value in zip(LIMITS[:-1], ratio, strict=True))
    lines = [f"paired_replay: {len(pooled)} saved H200 generations ({len(cycles)} cycles) of {len(sweeps)} "
             f"sweeps of {', '.join(limit_text(limit) for limit in LIMITS)}; pooled median ratio to "
             f"unlimited: {shown}"
             + f"; {args.sweeps} replayed sweeps each way, at most {args.max_cycles} cycles and "
             f"{args.seconds:g} s of blocks each"]
    for pick_confidence, by_sweep in itertools.product((CONFIDENCE, PICK_CONFIDENCE), (False, True)):
        rng = np.random.default_rng(20261203)
        found = [replay(sweeps[rng.integers(len(sweeps))] if by_sweep else pooled, rng, args.max_cycles,
                        args.seconds, pick_confidence) for _ in range(args.sweeps)]
        picks = collections.Counter(pick for decided, pick, _ in found if decided)
        decided = sum(picks.values()) / len(found)
        modal = picks.most_common(1)[0][1] / len(found) if picks else 0.0
        spent = np.array([s for *_, s in found])
        shown = ", ".join(f"{limit_text(pick) if pick is not None else 'none'} {count}"
                          for pick, count in picks.most_common())
        how = (f"fast by the {pick_confidence:.0%} bound, generations "
               + ("of one sweep at a time" if by_sweep else "of every sweep pooled"))
        lines.append(f"{how}: decided {decided:.0%} (picks when decided: {shown}); seconds of "
                     f"blocks median {np.median(spent):.1f}, 90th percentile {np.quantile(spent, 0.9):.1f}; "
                     f"five sweeps all decided on one pick: {modal ** 5:.0%}")
    publish("paired_replay.txt", "\n".join(lines))


if __name__ == "__main__":
    main()
