"""How far apart two stretches of decoding may run and still be compared: the H200's speed state over time.

    python benchmarks/pair_spacing.py            # CPU only, seconds

Timing ``lm`` against mlx-lm compares one generation of each, run one after the other; the GPU's
speed state moves while they run, so their ratio carries that movement as noise. The saved paired
sweeps (``benchmarks/results/gpu/run15`` to ``run21``, ``paired-*.json``) hold a time line of decode
speed in 6-step blocks. Each block's seconds per token is put on unlimited's scale (divided by its
limit's median cost relative to unlimited over the same blocks), then neighbouring stretches of
``n`` blocks are compared: the spread of the log ratio of their speeds (the interquartile range over
1.35, a standard deviation that ignores the rare stall) says how noisy one pair of generations of
that length is. Short pairs are both less noisy and more numerous in a given time.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

from _common import RESULTS, publish

from mlxtune import load

SITTINGS = ("run15", "run16", "run17", "run18", "run19", "run20", "run21")
STRETCHES = (1, 2, 4, 8, 16, 32)


def time_lines() -> tuple[list[np.ndarray], int]:
    """Each saved paired sweep's seconds per token, block by block in the order run, on unlimited's
    scale; and the timed steps of a block."""
    sweeps = [load(path).blocks for sitting in SITTINGS
              for path in sorted((RESULTS / "gpu" / sitting).glob("paired-*.json"))]
    blocks = pd.concat(sweeps, ignore_index=True)
    per_token = blocks["seconds"] / blocks["units"]
    cost = per_token.groupby(blocks["cache_limit"]).median()
    scale = cost / cost.loc[blocks["cache_limit"].max()]
    lines = [(b["seconds"] / b["units"] / b["cache_limit"].map(scale)).to_numpy()
             for b in (s.sort_values("started_at") for s in sweeps)]
    return lines, int(blocks["units"].median())


def spread(lines: list[np.ndarray], n: int) -> tuple[int, float]:
    """How many neighbouring pairs of ``n``-block stretches there are, and the spread of their log ratio."""
    logs = [np.log(line[i:i + n].mean() / line[i + n:i + 2 * n].mean())
            for line in lines for i in range(0, len(line) - 2 * n + 1, 2 * n)]
    low, high = np.percentile(logs, [25, 75])
    return len(logs), float((high - low) / 1.35)


def main() -> None:
    lines, steps = time_lines()
    rows = [f"pair_spacing: {len(lines)} paired sweeps ({', '.join(SITTINGS)}), "
            f"{sum(map(len, lines))} blocks of {steps} timed steps",
            f"{'tokens a stretch':>17} {'pairs':>6} {'spread of a pair':>17}"]
    for n in STRETCHES:
        pairs, sd = spread(lines, n)
        rows.append(f"{n * steps:>17} {pairs:>6} {sd:>17.3f}")
    publish("pair_spacing.txt", "\n".join(rows))


if __name__ == "__main__":
    main()
