"""The cache-limit trade-off on this CPU: the GPU benchmark's sweeps with a smaller model.

    .venv/bin/python benchmarks/cpu_sweep.py            # writes benchmarks/results/cpu_sweep*

A ~25M-parameter float32 llama (MLX's CPU backend runs float32 fastest), prompt 64 tokens, 128
generated, the same nine cache limits and 5 repeats interleaved, then the same model 4-bit, with
mlx-lm's cache clearing avoided, and allocator churn (see _tradeoff.py). On the CPU backend the
cache limit changes the footprint but hardly the speed of decoding; the intervals say how much.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _tradeoff import Preset, run

PRESET = Preset(prefix="cpu_sweep", size="small", prompt_tokens=64, gen_tokens=128, repeats=5)

if __name__ == "__main__":
    raise SystemExit(run(PRESET, __doc__.splitlines()[0]))
