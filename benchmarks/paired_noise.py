"""How noisy is one paired block, and what makes it so: memory sampling during blocks, block size.

The paired design's intervals narrow with the spread of a cycle's ratio (a limit's block speed over
the reference's in the same cycle). Limits that cost nothing (4MB and up on the H200) should give
ratios of 1.0 up to that noise, so the spread of their log ratios is the noise itself. This runs
fixed-length paired sweeps (no racing, no adaptive stop) of each variant, interleaved, and prints for
each: that spread, the 90% interval of each limit's ratio, and the measuring seconds.

    python benchmarks/paired_noise.py --out OUT [--size 1b] [--cycles 25] [--sittings 2] [--variants ...]

Variants (``--variants``, comma-separated): ``B+S`` times blocks of B steps after S settling steps,
without sampling memory during them; ``B+S sampled`` samples it every 2 ms. Besides the spread,
each line prints the robust spread (1.4826 MAD: a few far-off cycles weigh on the standard
deviation, not on the median the rule uses), the blocks' seconds per cycle, and the figure that
matters: the robust variance times the seconds per cycle, relative to the first variant (an
interval of a given width takes that much of the time). Each sweep is saved
(``blocks-B-S[-sampled]-<sitting>.json``) for replaying the rule offline.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

import numpy as np

from mlxtune import Blocks, sweep
from mlxtune.decision import sign_bounds
from mlxtune.environment import environment
from mlxtune.result import SweepResult
from mlxtune.units import UNLIMITED, limit_text
from mlxtune.workloads import lm, tiny_model

LIMITS = "0,256KB,1MB,4MB,16MB,64MB,unlimited"
#: Sampling interval of the "sampled" variants, seconds.
SAMPLED = 0.002


def variant(name: str) -> tuple[Blocks, float | None]:
    """A variant's block sizes and sampling interval from its name ("12+2" or "12+2 sampled")."""
    sizes, _, sampled = name.partition(" ")
    block, _, settle = sizes.partition("+")
    if not (block.isdigit() and settle.isdigit()) or sampled not in ("", "sampled"):
        raise ValueError(f"unknown variant {name!r}: expected B+S or B+S sampled, e.g. 12+2")
    return Blocks(block=int(block), settle=int(settle)), SAMPLED if sampled else None


def file_stem(name: str) -> str:
    """A variant's name as a file name: letters, digits and dashes only."""
    return "blocks-" + name.replace("+", "-").replace(" ", "-")
FREE = (4_000_000, 16_000_000, 64_000_000)  # limits that cost nothing on the GPU host


def cycle_log_ratios(result: SweepResult) -> dict[int, np.ndarray]:
    """Each limit's log speed over the reference's, one value per cycle both ran."""
    blocks = result.blocks[result.blocks["error"] == ""]
    table = blocks.pivot_table(index="repeat", columns="cache_limit", values="throughput", aggfunc="first")
    reference = np.log(table[UNLIMITED])
    return {int(c): (np.log(table[c]) - reference).dropna().to_numpy()
            for c in table.columns if c != UNLIMITED}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", default="1b")
    parser.add_argument("--cycles", type=int, default=25)
    parser.add_argument("--sittings", type=int, default=2)
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--gen-tokens", type=int, default=256)
    parser.add_argument("--variants", default="12+2 sampled,12+2,24+4",
                        help="comma-separated: B+S (blocks of B steps after S settling steps) or B+S sampled")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.variants.split(",")]
    try:
        variants = {name: variant(name) for name in chosen}
    except ValueError as error:
        parser.error(str(error))
    args.out.mkdir(parents=True, exist_ok=True)
    env = environment()
    lines = [f"paired_noise: {env['backend']} ({env['device_name']}), mlx {env['mlx']}, "
             f"mlx-lm {env['mlx_lm']}"]
    print(lines[-1], flush=True)
    work = lm(str(tiny_model(size=args.size, dtype="float16")), prompt_tokens=args.prompt_tokens,
              gen_tokens=args.gen_tokens)
    work.setup()
    found: dict[str, list[dict[int, np.ndarray]]] = {name: [] for name in chosen}
    seconds: dict[str, float] = dict.fromkeys(chosen, 0.0)
    for sitting in range(args.sittings):
        for name in chosen:
            blocks, interval = variants[name]
            result = sweep(work, cache_limits=LIMITS, repeats=args.cycles, design="paired", blocks=blocks,
                           sample_interval=interval, seed=sitting, progress=False, label=name)
            result.to_json(str(args.out / f"{file_stem(name)}-{sitting + 1}.json"))
            found[name].append(cycle_log_ratios(result))
            seconds[name] += float(result.blocks["wall_seconds"].sum())
    summary = {}
    first_cost = None
    for name, sittings in found.items():
        free = np.concatenate([s[c] for s in sittings for c in FREE if c in s])
        spread = float(np.std(free))
        robust = float(1.4826 * np.median(np.abs(free - np.median(free))))
        per_cycle = seconds[name] / (args.cycles * args.sittings)
        cost = robust**2 * per_cycle
        first_cost = first_cost or cost
        cells = []
        for limit in sorted({c for s in sittings for c in s}):
            values = np.concatenate([s[limit] for s in sittings if limit in s])
            low, high = np.exp(sign_bounds(values, 0.9))
            cells.append(f"{limit_text(limit)} {np.exp(np.median(values)):.3f} [{low:.3f}, {high:.3f}]")
        lines.append(f"{name:>12}: sd of a free limit's cycle log ratio {spread:.3f} (robust {robust:.3f}); "
                     f"{seconds[name]:.1f}s of blocks, {per_cycle:.2f}s a cycle; time to a given width "
                     f"{cost / first_cost:.2f}x; " + "  ".join(cells))
        print(lines[-1], flush=True)
        summary[name] = {"free_log_ratio_sd": spread, "free_log_ratio_robust_sd": robust,
                         "block_seconds": seconds[name], "seconds_per_cycle": per_cycle,
                         "relative_time_to_width": cost / first_cost}
    (args.out / "paired_noise.txt").write_text("\n".join(lines) + "\n")
    (args.out / "paired_noise.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"{time.perf_counter() - started:.0f}s in all")
