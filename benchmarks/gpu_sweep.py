"""The cache-limit trade-off on a GPU: a ~1.1B-parameter float16 llama, 4-bit, and allocator churn.

Run on the GPU host from the repository root, without installing the project:

    PYTHONPATH=. /root/mlx-cuda/bin/python benchmarks/gpu_sweep.py --out OUT_DIR

Prompt 512 tokens, 256 generated, cache limits 0, 1MB, 4MB, 16MB, 64MB, 256MB, 1GB, 4GB and
unlimited, 5 repeats interleaved (see _tradeoff.py for the sweeps and the files). After the float16
sweep it sets the medians beside a measurement seen on an H100 before. ``--size tiny --repeats 1``
makes a smoke test that runs anywhere in seconds.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _tradeoff import Preset, run

from mlxtune.result import SweepResult
from mlxtune.units import parse_size

PRESET = Preset(prefix="gpu_sweep", size="1b", prompt_tokens=512, gen_tokens=256, repeats=5,
                churn_buffers=1000)

#: Seen on an H100 before (median of 3 runs, decode of 256 tokens with generate_step, ~1.1B fp16).
SEEN_BEFORE = {"0": 229, "1MB": 262, "16MB": 329, "256MB": 353, "4GB": 388, "unlimited": 389}


def compare_with_seen(name: str, result: SweepResult, log: Callable[[str], None]) -> None:
    """After the float16 sweep: our medians beside the earlier H100 figures, limit by limit."""
    if name != "lm":
        return
    summary = result.summary_frame().set_index("cache_limit")
    log("Beside the earlier H100 measurement (tokens/s):")
    log(f"{'cache limit':>11}  {'before':>6}  {'now (median, 95% CI)':>26}  now/before")
    for text, before in SEEN_BEFORE.items():
        limit = parse_size(text)
        if limit not in summary.index:
            continue
        row = summary.loc[limit]
        now = row["throughput_median"]
        interval = f"{now:.1f} ({row['throughput_ci_low']:.1f}..{row['throughput_ci_high']:.1f})"
        log(f"{text:>11}  {before:>6}  {interval:>26}  {now / before:>10.2f}")


if __name__ == "__main__":
    raise SystemExit(run(PRESET, __doc__.splitlines()[0], after=compare_with_seen))
