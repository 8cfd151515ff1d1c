"""Paired within runs against whole runs: which design gives a decided answer, and how fast.

Run on the GPU host from the repository root, without installing the project:

    PYTHONPATH=. /root/mlx-cuda/bin/python benchmarks/paired_vs_runs.py --out OUT_DIR

In one sitting, on one ~1.1B float16 model (random weights, built locally), limits 0, 256KB, 1MB,
4MB, 16MB, 64MB and unlimited:

- ``--sweeps`` (5) adaptive sweeps of each design, interleaved (paired, runs, paired, runs, ...):
  the paired design switches the limit between blocks of decode steps inside one generation
  (``design="paired"``, at most ``--paired-seconds`` each), the whole-run design times one
  generation per run (``design="runs"``, at most ``--runs-seconds`` each). For each design it
  prints decided answers out of the sweeps, the picks, the seconds of measuring to the answer
  (the blocks' or runs' own wall time) and of the whole sweep, and each limit's interval.
- The goal check: every paired pick is judged against all paired blocks pooled (every sweep's
  cycles together): no pick may be more than 5% below unlimited there.
- ``lm`` against ``mlx_lm.benchmark``'s own timing (``stream_generate``, as the benchmark runs it
  for one sequence), interleaved in this process: up to ``--pairs`` pairs in at most
  ``--lm-seconds``, each pair one generation of ``--lm-gen-tokens`` by each in turn; the ratio of
  decode tokens/s with a 90% interval of the median of the pairs' ratios. The GPU's speed state
  moves within seconds, so the two halves of a pair differ less the closer together they run:
  generations of 128 tokens (the lm workload's default) give about twice the pairs of 256-token ones
  in the same time, each no noisier.

``--size tiny`` makes a smoke test that runs anywhere in seconds. Results are written as they come
(``paired_vs_runs.txt``, one JSON per sweep, ``paired_vs_runs.json`` before and after the ``lm``
pairs), so a run cut short keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from functools import partial
from pathlib import Path
from typing import Any

os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

import numpy as np
import pandas as pd

from mlxtune import sweep
from mlxtune.decision import decide
from mlxtune.environment import environment
from mlxtune.result import SweepResult
from mlxtune.stats import median_ci, summarize
from mlxtune.units import format_size
from mlxtune.workloads import lm, tiny_model

LIMITS = "0,256KB,1MB,4MB,16MB,64MB,unlimited"
TOLERANCE = 0.05


class Log:
    """Prints a line and keeps it, so the text file holds what was printed."""

    def __init__(self, path: Path) -> None:
        self.path, self.lines = path, []

    def __call__(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)
        self.path.write_text("\n".join(self.lines) + "\n")


def measuring_seconds(result: SweepResult) -> float:
    """Seconds spent measuring speed: the blocks' wall time in a paired sweep, else the runs'."""
    return float(result.speed_rows["wall_seconds"].sum())


def describe(result: SweepResult, design: str, elapsed: float) -> dict[str, Any]:
    rec = result.recommend(tolerance=TOLERANCE)
    points = result.decision(tolerance=TOLERANCE).points
    return {
        "design": design, "decided": bool(rec.decided), "pick": rec.cache_limit,
        "measuring_seconds": measuring_seconds(result), "sweep_seconds": elapsed,
        "rows": len(result.speed_rows), "stop_reason": result.stop_reason,
        "points": [{"cache_limit": int(row["cache_limit"]), "ratio": row["ratio"], "low": row["ratio_low"],
                    "high": row["ratio_high"], "verdict": row["verdict"]} for _, row in points.iterrows()],
    }


def pooled(results: list[SweepResult]) -> pd.DataFrame:
    """Every paired sweep's blocks in one decision, cycles numbered apart: the best estimate of truth."""
    frames, offset = [], 0
    for result in results:
        blocks = result.blocks.copy()
        blocks["repeat"] += offset
        offset = int(blocks["repeat"].max()) + 1
        frames.append(blocks)
    blocks = pd.concat(frames, ignore_index=True)
    params = ["cache_limit"]
    return decide(blocks, summarize(blocks, params), params, tolerance=TOLERANCE, paired=True).points


def lm_against_mlx_lm(work: Any, gen_tokens: int, pairs: int, seconds: float, log: Log) -> dict[str, Any]:
    """Decode tokens/s of the lm workload over mlx-lm's own stream_generate timing, alternating, on
    ``work``'s model and prompt length with ``gen_tokens`` per generation; stops after ``pairs`` pairs
    or once ``seconds`` have passed."""
    from mlx_lm import stream_generate

    work.setup()  # a sweep's teardown drops a model it loaded
    ours_work = lm(work.model, work.tokenizer, prompt_tokens=work.prompt_tokens, gen_tokens=gen_tokens,
                   mlx_cache_clearing=work.mlx_cache_clearing)
    ours_work.setup()
    prompt = ours_work._prompt[0].tolist()

    def theirs() -> float:
        *_, last = stream_generate(work.model, work.tokenizer, prompt, max_tokens=gen_tokens,
                                   prefill_step_size=work.prefill_step_size)
        return float(last.generation_tps)

    def ours() -> float:
        return float(ours_work().metrics["generation_tps"])

    work.tokenizer._eos_token_ids = {}  # as mlx_lm.benchmark does: never stop early
    theirs(), ours()  # warm-up
    ratios, rows = [], []
    began = time.perf_counter()
    while len(rows) < pairs and time.perf_counter() - began < seconds:
        first, second = (ours, theirs) if len(rows) % 2 else (theirs, ours)
        a, b = first(), second()
        mine, mlx_lm = (a, b) if first is ours else (b, a)
        ratios.append(mine / mlx_lm)
        rows.append({"lm": mine, "mlx_lm": mlx_lm})
    spent = time.perf_counter() - began
    low, high = median_ci(ratios, confidence=0.90)
    ratio = statistics.median(ratios)
    counted_alike = (gen_tokens - 1) / gen_tokens  # mlx-lm's G tokens over G-1 steps, as lm counts
    log(f"\n== lm vs mlx-lm's stream_generate (as mlx_lm.benchmark times it), {len(rows)} pairs of "
        f"{gen_tokens}-token generations alternating in {spent:.0f}s: "
        f"lm {statistics.median(r['lm'] for r in rows):.1f} tok/s, mlx-lm "
        f"{statistics.median(r['mlx_lm'] for r in rows):.1f} tok/s; ratio {ratio:.3f} "
        f"[{low:.3f}, {high:.3f}] (90%, median of the pairs), goal within 3%: "
        f"{'met' if max(abs(low - 1), abs(high - 1)) <= 0.03 else 'NOT met'}")
    log(f"   (mlx-lm divides its G tokens by the time after the first one, lm its G tokens after the "
        f"first by their own time: {1 / gen_tokens:.1%} of mlx-lm's figure is that counting; counted "
        f"alike the ratio is {ratio / counted_alike:.3f} [{low / counted_alike:.3f}, "
        f"{high / counted_alike:.3f}])")
    return {"pairs": rows, "ratio": ratio, "low": low, "high": high, "gen_tokens": gen_tokens,
            "seconds": spent}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", default="1b")
    parser.add_argument("--sweeps", type=int, default=5)
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--gen-tokens", type=int, default=256, help="decoded per whole run")
    parser.add_argument("--paired-seconds", type=float, default=30.0)
    parser.add_argument("--runs-seconds", type=float, default=60.0)
    parser.add_argument("--pairs", type=int, default=1000, help="lm against mlx-lm: at most this many pairs")
    parser.add_argument("--lm-seconds", type=float, default=60.0, help="lm against mlx-lm: at most this long")
    parser.add_argument("--lm-gen-tokens", type=int, default=128,
                        help="lm against mlx-lm: tokens decoded per generation")
    parser.add_argument("--mlx-cache-clearing", choices=("keep", "avoid"), default="keep",
                        help="keep mlx-lm's own cache clearing (as shipped) or avoid it")
    parser.add_argument("--designs", default="paired,runs", help="which designs to sweep, in order")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    log = Log(args.out / "paired_vs_runs.txt")
    started = time.perf_counter()
    env = environment()
    log(f"paired_vs_runs: {env['backend']} ({env['device_name']}, {format_size(env['device_memory'])}), "
        f"mlx {env['mlx']}, mlx-lm {env['mlx_lm']}, python {env['python']}; mlx-lm cache clearing: "
        f"{args.mlx_cache_clearing}")
    model = str(tiny_model(size=args.size, dtype="float16"))
    work = lm(model, prompt_tokens=args.prompt_tokens, gen_tokens=args.gen_tokens,
              mlx_cache_clearing=args.mlx_cache_clearing)
    work.setup()
    log(f"model {Path(model).name} ({time.perf_counter() - started:.0f}s to build or find, and load)")
    designs = args.designs.split(",")
    seconds_of = {"paired": args.paired_seconds, "runs": args.runs_seconds}
    found: dict[str, list[dict[str, Any]]] = {design: [] for design in designs}
    paired_results: list[SweepResult] = []
    for n in range(args.sweeps):
        for design, seconds in ((design, seconds_of[design]) for design in designs):
            began = time.perf_counter()
            result = sweep(work, cache_limits=LIMITS, repeats="auto", design=design, seed=n,
                           max_seconds=seconds, tolerance=TOLERANCE, progress=False,
                           label=f"{args.size} decode, {design} {n + 1}")
            elapsed = time.perf_counter() - began
            result.to_json(str(args.out / f"{design}-{n + 1}.json"))
            if design == "paired":
                paired_results.append(result)
            entry = describe(result, design, elapsed)
            found[design].append(entry)
            pick = "none" if entry["pick"] is None else format_size(entry["pick"])
            log(f"{design:>6} {n + 1}: {'decided' if entry['decided'] else 'undecided'}, pick {pick}, "
                f"{entry['measuring_seconds']:.1f}s measuring ({elapsed:.1f}s in all, {entry['rows']} "
                f"{'blocks' if design == 'paired' else 'runs'}); {entry['stop_reason']}")
            log("         " + "  ".join(f"{format_size(p['cache_limit'])} {p['ratio']:.3f} "
                                       f"[{p['low']:.3f}, {p['high']:.3f}]" for p in entry["points"]))
    accuracy = partial(lm_against_mlx_lm, work, args.lm_gen_tokens, args.pairs, args.lm_seconds, log)
    if not paired_results:  # --sweeps 0: the lm comparison alone
        accuracy()
        return
    truth = pooled(paired_results)
    log("\n== all paired blocks pooled (speed relative to unlimited, 90% two-sided):")
    for _, row in truth.iterrows():
        log(f"  {format_size(row['cache_limit']):>9}  {row['ratio']:.3f} [{row['ratio_low']:.3f}, "
            f"{row['ratio_high']:.3f}]  {row['verdict']}")
    pooled_ratio = dict(zip(truth["cache_limit"].astype(int), truth["ratio"], strict=True))
    summary: dict[str, Any] = {}
    for design, entries in found.items():
        picks = [e["pick"] for e in entries]
        decided = sum(e["decided"] for e in entries)
        worst = min((pooled_ratio.get(p, np.nan) for p in picks if p is not None), default=np.nan)
        seconds = [e["measuring_seconds"] for e in entries]
        summary[design] = {"decided": decided, "picks": picks, "measuring_seconds": seconds,
                           "worst_pick_pooled_ratio": worst}
        log(f"\n{design}: {decided} of {len(entries)} decided; picks "
            f"{', '.join('none' if p is None else format_size(p) for p in picks)}; measuring seconds "
            f"{', '.join(f'{s:.1f}' for s in seconds)} (max {max(seconds):.1f}); worst pick by all paired "
            f"data pooled {worst:.3f} of unlimited")
    paired = summary.get("paired", {"decided": 0, "picks": [None], "worst_pick_pooled_ratio": np.nan,
                                    "measuring_seconds": [np.inf]})
    goals = {"all decided": paired["decided"] == args.sweeps,
             "same pick": len(set(paired["picks"])) == 1,
             "no pick below 0.95": bool(paired["worst_pick_pooled_ratio"] >= 1 - TOLERANCE),
             "at most 30 s each": max(paired["measuring_seconds"]) <= 30.0}
    log("paired goals: " + ", ".join(f"{name} {'met' if ok else 'NOT met'}" for name, ok in goals.items()))
    document = {"environment": env, "limits": LIMITS, "size": args.size, "sweeps": found,
                "summary": summary, "pooled": json.loads(truth.to_json(orient="records")), "goals": goals,
                "lm_accuracy": None}

    def save() -> None:
        document["seconds"] = time.perf_counter() - started
        (args.out / "paired_vs_runs.json").write_text(json.dumps(document, indent=1, default=str) + "\n")

    save()  # the sweeps are kept even if the lm pairs are cut short
    if args.pairs and args.lm_seconds > 0:
        document["lm_accuracy"] = accuracy()
        save()
    log(f"\n{time.perf_counter() - started:.0f}s in all")


if __name__ == "__main__":
    main()
