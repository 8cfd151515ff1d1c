"""The cache-limit trade-off benchmark behind cpu_sweep.py and gpu_sweep.py: one procedure, two presets.

With mlxtune's own engine and workloads: build a random-weight llama model with ``tiny_model``,
then sweep the cache limits over
- ``lm``: its generation as saved (float16 for "1b"), mlx-lm's own cache clearing kept;
- ``q4``: the same model quantized to 4 bits;
- ``avoid``: as ``lm`` but with mlx-lm's cache clearing avoided, so the limit alone decides;
- ``churn``: the synthetic allocator-heavy workload.
Runs are interleaved across limits within each sweep. Each sweep is saved as JSON, CSV and an
HTML report; ``<prefix>.txt`` repeats what was printed and ``<prefix>.json`` indexes the medians,
their 95% confidence intervals, the ratio unlimited/0 with its interval, and the recommendation.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

from mlxtune import sweep
from mlxtune.environment import environment
from mlxtune.present import summary_table, text_table
from mlxtune.result import SweepResult
from mlxtune.stats import ratio_ci
from mlxtune.units import format_size, parse_size
from mlxtune.workloads import allocator_churn, lm, tiny_model

CACHE_LIMITS = "0,1MB,4MB,16MB,64MB,256MB,1GB,4GB,unlimited"
SWEEPS = ("lm", "q4", "avoid", "churn")
RESULTS = Path(__file__).parent / "results"


@dataclasses.dataclass(frozen=True)
class Preset:
    """Defaults of one benchmark; every field can be overridden on the command line."""

    prefix: str
    size: str
    prompt_tokens: int
    gen_tokens: int
    repeats: int = 5
    warmup: int = 1
    churn_buffers: int = 2000


def _parser(preset: Preset, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the result files")
    parser.add_argument("--size", default=preset.size, help=f"tiny_model size (default {preset.size})")
    parser.add_argument("--prompt-tokens", type=int, default=preset.prompt_tokens)
    parser.add_argument("--gen-tokens", type=int, default=preset.gen_tokens)
    parser.add_argument("--repeats", type=int, default=preset.repeats)
    parser.add_argument("--warmup", type=int, default=preset.warmup)
    parser.add_argument("--cache-limits", default=CACHE_LIMITS)
    parser.add_argument("--churn-buffers", type=int, default=preset.churn_buffers)
    parser.add_argument("--only", default=",".join(SWEEPS), help=f"sweeps to run, of {','.join(SWEEPS)}")
    return parser


class _Log:
    """Prints and keeps every line for the .txt file."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.started = time.perf_counter()

    def __call__(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.extend(text.splitlines() or [""])

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def _point_figures(result: SweepResult) -> list[dict[str, Any]]:
    summary = result.summary_frame()
    keep = ["cache_limit", "throughput_median", "throughput_ci_low", "throughput_ci_high", "throughput_iqr",
            "footprint", "peak_memory_max", "cache_after_max", "failed", "runs"]
    extra = [c for c in ("prompt_tps_median", "generation_tps_median") if c in summary]
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            for row in summary[keep + extra].to_dict("records")]


def _ratio(result: SweepResult) -> dict[str, float] | None:
    """Throughput at the largest limit over throughput at the smallest, with its 95% interval."""
    runs = result.runs[result.runs["error"] == ""]
    low, high = min(runs["cache_limit"]), max(runs["cache_limit"])
    if low == high:
        return None
    estimate, lo, hi = ratio_ci(runs.loc[runs["cache_limit"] == high, "throughput"],
                                runs.loc[runs["cache_limit"] == low, "throughput"])
    return {"largest": int(high), "smallest": int(low), "ratio": estimate, "ci_low": lo, "ci_high": hi}


def _workloads(args: argparse.Namespace, model: Path) -> dict[str, tuple[str, Callable[[], Any]]]:
    common = dict(prompt_tokens=args.prompt_tokens, gen_tokens=args.gen_tokens)
    return {
        "lm": (f"{args.size} as saved, decode", lm(str(model), **common)),
        "q4": (f"{args.size} 4-bit, decode", lm(str(model), dtype="q4", **common)),
        "avoid": (f"{args.size} as saved, decode, mlx-lm clearing avoided",
                  lm(str(model), mlx_cache_clearing="avoid", **common)),
        "churn": ("allocator churn", allocator_churn(buffers=args.churn_buffers)),
    }


def run(preset: Preset, description: str, argv: list[str] | None = None,
        after: Callable[[str, SweepResult, _Log], None] | None = None) -> int:
    """Run the benchmark; ``after(name, result, log)`` may print preset-specific comparisons."""
    args = _parser(preset, description).parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    if unknown := [s for s in chosen if s not in SWEEPS]:
        raise SystemExit(f"unknown sweep {unknown[0]!r}: expected some of {', '.join(SWEEPS)}")
    limits = [parse_size(v) for v in args.cache_limits.split(",")]
    log = _Log()
    env = environment()
    log(f"{preset.prefix}: backend {env['backend']} ({env['device_name']}, "
        f"{format_size(env['device_memory'])}), mlx {env['mlx']}, mlx-lm {env['mlx_lm']}, "
        f"python {env['python']}")
    log(f"cache limits {', '.join(format_size(v) for v in limits)}; {args.repeats} repeats interleaved, "
        f"{args.warmup} warm-up; prompt {args.prompt_tokens} tokens, generate {args.gen_tokens}")
    model = tiny_model(size=args.size)
    parameters = json.loads((model / "mlxtune-model.json").read_text())["parameters"]
    log(f"model {model.name}: {parameters / 1e6:.1f}M parameters ({log.elapsed:.0f}s to build or find)")
    args.out.mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = {"environment": env, "arguments": {k: str(v) for k, v in vars(args).items()},
                             "model": model.name, "parameters": parameters, "sweeps": {}}
    workloads = _workloads(args, model)
    for name in chosen:
        label, workload = workloads[name]
        log(f"\n== {name}: {label} ({log.elapsed:.0f}s elapsed)")
        result = sweep(workload, cache_limits=limits, repeats=args.repeats, warmup=args.warmup,
                       label=f"{preset.prefix} {name}: {label}", progress=False)
        rec = result.recommend()
        log(text_table(summary_table(result, rec)))
        log(f"Recommendation: {rec.reason}")
        ratio = _ratio(result)
        if ratio:
            log(f"{format_size(ratio['largest'])} vs {format_size(ratio['smallest'])}: x{ratio['ratio']:.3f} "
                f"(95% CI {ratio['ci_low']:.3f}..{ratio['ci_high']:.3f})")
        stem = args.out / f"{preset.prefix}-{name}"
        files = [result.to_json(f"{stem}.json"), result.to_csv(f"{stem}.csv"), result.to_html(f"{stem}.html")]
        index["sweeps"][name] = {
            "label": result.label, "workload": result.workload, "unit": result.unit,
            "complete": result.complete, "failed_runs": result.failed_runs,
            "files": [Path(f).name for f in files],
            "points": _point_figures(result), "ratio_largest_to_smallest": ratio,
            "recommendation": {"cache_limit": rec.cache_limit, "within_noise": rec.within_noise,
                               "reason": rec.reason},
        }
        if after is not None:
            after(name, result, log)
    log(f"\ndone in {log.elapsed:.0f}s; files in {args.out}")
    (args.out / f"{preset.prefix}.txt").write_text("\n".join(log.lines) + "\n")
    (args.out / f"{preset.prefix}.json").write_text(json.dumps(index, indent=1, default=str) + "\n")
    return 0
