"""The recommendation and memory over time on a GPU: a long reference sweep, an adaptive sweep of the
same model, and a chat whose footprint grows turn by turn, in one session.

Run on the GPU host from the repository root, without installing the project:

    PYTHONPATH=. /root/mlx-cuda/bin/python benchmarks/gpu_evidence.py --out OUT_DIR

- reference: ~1.1B float16 decode (prompt 512, 256 generated), 9 cache limits, 15 rounds interleaved;
- adaptive: the same workload with ``repeats="auto"`` (at most 10 rounds), to compare answers and runs;
- chat: five turns of 256 prompt tokens and 128 answered, in one prompt cache, at cache limits 0,
  20MB and unlimited (mlx-lm's own clearing avoided, so the limit alone decides), 3 rounds.
``--size tiny`` makes a smoke test that runs anywhere in seconds. Each sweep is saved as JSON (runs,
timelines, recommendation) and ``gpu_evidence.txt`` repeats what was printed.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

from mlxtune import sweep
from mlxtune.environment import environment
from mlxtune.units import format_size
from mlxtune.workloads import chat, lm, tiny_model

LIMITS = "0,1MB,4MB,16MB,64MB,256MB,1GB,4GB,unlimited"
CHAT_LIMITS = "0,20MB,unlimited"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", default="1b")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--gen-tokens", type=int, default=256)
    parser.add_argument("--turns", type=int, default=5)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    started = time.perf_counter()

    def log(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    env = environment()
    log(f"gpu_evidence: {env['backend']} ({env['device_name']}, {format_size(env['device_memory'])}), "
        f"mlx {env['mlx']}, mlx-lm {env['mlx_lm']}, python {env['python']}")
    model = str(tiny_model(size=args.size, dtype="float16"))
    log(f"model {Path(model).name} ({time.perf_counter() - started:.0f}s to build or find)")
    work = lm(model, prompt_tokens=args.prompt_tokens, gen_tokens=args.gen_tokens)
    for name, repeats in (("reference", args.repeats), ("adaptive", "auto")):
        result = sweep(work, cache_limits=LIMITS, repeats=repeats, label=f"{args.size} decode, {name}",
                       progress=False)
        result.to_json(str(args.out / f"gpu_evidence-{name}.json"))
        rec = result.recommend()
        elapsed = time.perf_counter() - started
        log(f"\n== {name}: {len(result.runs)} runs, {elapsed:.0f}s in all; {result.stop_reason}")
        for _, row in result.decision().points.iterrows():
            bounds = f"[{row['ratio_low']:.3f}, {row['ratio_high']:.3f}]"
            log(f"  {format_size(row['cache_limit']):>9}  median {row['speed']:7.1f} tok/s  "
                f"ratio {row['ratio']:.3f} {bounds}  {row['verdict']}")
        log(f"  recommendation ({'decided' if rec.decided else 'undecided'}): {rec.reason}")
    talk = chat(model, turns=args.turns, tokens_per_turn=args.gen_tokens // 2,
                prompt_tokens=args.prompt_tokens // 2, mlx_cache_clearing="avoid")
    result = sweep(talk, cache_limits=CHAT_LIMITS, repeats=3, label=f"{args.size} chat", progress=False)
    result.to_json(str(args.out / "gpu_evidence-chat.json"))
    log(f"\n== chat: {len(result.runs)} runs in {time.perf_counter() - started:.0f}s")
    ok = result.runs[result.runs["error"] == ""]
    for limit, runs in ok.groupby("cache_limit"):
        held = "  ".join(format_size(runs[f"turn{t}_memory"].median()) for t in range(1, args.turns + 1))
        peak = format_size(runs["footprint_peak"].max())
        speed = runs["throughput"].median()
        log(f"  {format_size(limit):>9}  after each turn: {held}  peak {peak}  {speed:.1f} tok/s")
    (args.out / "gpu_evidence.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
