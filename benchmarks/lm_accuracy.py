"""Does the lm workload measure what mlx-lm measures? Its generation tokens/s next to mlx_lm.benchmark.

Both run on the same local model folder (built by ``tiny_model``) with the same prompt and
generation lengths, in one invocation: ``python -m mlx_lm.benchmark --model PATH`` in a subprocess
(it loads local folders as well as hub ids), and a sweep of ``lm(PATH)`` at the cache limit in force
(MLX's default, as mlx_lm.benchmark runs). The two alternate for ``--rounds`` rounds so drift of the
machine hits both. Target: generation tokens/s within 10%.

Counting differs slightly, by design: mlx_lm.benchmark divides all G generated tokens by the time
from the first token to the last (G-1 decode steps); the lm workload decodes G tokens after the
first and divides G by their time. At G=128 that alone makes mlx-lm's figure 0.8% higher.

Prints the figures and writes benchmarks/results/lm_accuracy.{txt,json} (or under ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

from mlxtune import memory, sweep
from mlxtune.environment import environment
from mlxtune.workloads import lm, tiny_model

RESULTS = Path(__file__).parent / "results"
_AVERAGES = re.compile(r"Averages: prompt_tps=([\d.]+), generation_tps=([\d.]+), peak_memory=([\d.]+)")


def mlx_lm_benchmark(model: Path, prompt: int, gen: int, trials: int) -> dict[str, float]:
    """Run ``python -m mlx_lm.benchmark`` and return its averages."""
    command = [sys.executable, "-m", "mlx_lm.benchmark", "--model", str(model),
               "-p", str(prompt), "-g", str(gen), "-n", str(trials)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    match = _AVERAGES.search(done.stdout)
    if done.returncode != 0 or match is None:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise SystemExit(f"mlx_lm.benchmark failed (exit {done.returncode}): {tail[0]}")
    prompt_tps, generation_tps, peak_gb = map(float, match.groups())
    return {"prompt_tps": prompt_tps, "generation_tps": generation_tps, "peak_memory_gb": peak_gb}


def ours(model: Path, prompt: int, gen: int, trials: int) -> dict[str, Any]:
    """The lm workload through the sweep engine, at the cache limit in force, ``trials`` runs."""
    work = lm(str(model), prompt_tokens=prompt, gen_tokens=gen)
    result = sweep(work, cache_limits=[memory.get_cache_limit()], repeats=trials, warmup=1, progress=False,
                   label="lm")
    runs = result.runs
    return {
        "prompt_tps": float(runs["prompt_tps"].mean()),
        "generation_tps": float(runs["generation_tps"].mean()),
        "generation_tps_median": float(runs["generation_tps"].median()),
        "peak_memory_gb": float(runs["peak_memory"].max()) / 1e9,
        "runs": runs["generation_tps"].round(3).tolist(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small", help="tiny_model size (default small)")
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--gen-tokens", type=int, default=128)
    parser.add_argument("--trials", type=int, default=5, help="timed runs per round on each side")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (default 2)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the result files")
    args = parser.parse_args(argv)

    model = tiny_model(size=args.size)
    env = environment()
    lines = [f"lm workload vs mlx_lm.benchmark: model {args.size} ({model.name}), "
             f"prompt {args.prompt_tokens}, generate {args.gen_tokens}, "
             f"{args.trials} trials x {args.rounds} rounds each",
             f"backend {env['backend']} ({env['device_name']}), mlx {env['mlx']}, mlx-lm {env['mlx_lm']}"]
    print("\n".join(lines), flush=True)
    rounds = []
    for n in range(args.rounds):
        theirs = mlx_lm_benchmark(model, args.prompt_tokens, args.gen_tokens, args.trials)
        mine = ours(model, args.prompt_tokens, args.gen_tokens, args.trials)
        rounds.append({"mlx_lm_benchmark": theirs, "lm_workload": mine})
        line = (f"round {n + 1}: generation tokens/s mlx_lm.benchmark {theirs['generation_tps']:.2f}, "
                f"lm workload {mine['generation_tps']:.2f} (median {mine['generation_tps_median']:.2f}); "
                f"prompt tokens/s {theirs['prompt_tps']:.1f} vs {mine['prompt_tps']:.1f}")
        print(line, flush=True)
        lines.append(line)
    theirs_gen = statistics.mean(r["mlx_lm_benchmark"]["generation_tps"] for r in rounds)
    ours_gen = statistics.mean(r["lm_workload"]["generation_tps"] for r in rounds)
    difference = ours_gen / theirs_gen - 1
    verdict = "within" if abs(difference) <= 0.10 else "OUTSIDE"
    summary = (f"generation tokens/s over all rounds: mlx_lm.benchmark {theirs_gen:.2f}, lm workload "
               f"{ours_gen:.2f}: {difference:+.1%} ({verdict} the 10% target; "
               f"{1 / args.gen_tokens:.1%} of it is mlx-lm counting the first token in generation)")
    print(summary)
    lines.append(summary)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "lm_accuracy.txt").write_text("\n".join(lines) + "\n")
    document = {"size": args.size, "model": model.name, "prompt_tokens": args.prompt_tokens,
                "gen_tokens": args.gen_tokens, "trials": args.trials, "rounds": rounds,
                "generation_tps": {"mlx_lm_benchmark": theirs_gen, "lm_workload": ours_gen},
                "difference": difference, "environment": env}
    (args.out / "lm_accuracy.json").write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {args.out / 'lm_accuracy.txt'} and lm_accuracy.json")
    return 0 if abs(difference) <= 0.10 else 1


if __name__ == "__main__":
    raise SystemExit(main())
