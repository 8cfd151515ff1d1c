"""Render time of a 45-run HTML report, before the one-analysis redesign and after, side by side.

    python benchmarks/report_render.py

A constructed sweep of 9 cache limits x 5 repeats (the size of a default GPU sweep) is rendered
with ``to_html`` by two copies of mlxtune in turn: this checkout, and the commit before the
redesign (``a4a595a``, checked out into a temporary git worktree). Each renders a fresh result 15
times, alternating between the two so the machine's drift hits both alike; it prints the medians
and their ratio. Writes benchmarks/results/report_render.txt.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from _common import publish

ROOT = Path(__file__).resolve().parent.parent
BEFORE = "a4a595a"
ROUNDS = 15

TIMING = textwrap.dedent("""
    import json, sys, time, tempfile, os
    import numpy as np
    from mlxtune.measure import runs_frame
    from mlxtune.result import SweepResult
    limits = [0, 10**6, 4 * 10**6, 16 * 10**6, 64 * 10**6, 256 * 10**6, 10**9, 4 * 10**9, 2**63 - 1]
    rng = np.random.default_rng(0)
    def row(c, r):
        return {"cache_limit": c, "repeat": r, "seconds": 1.0, "wall_seconds": 1.0, "units": 256.0,
                "unit": "tokens", "throughput": 200.0 + 20 * rng.standard_normal(),
                "peak_memory": 2_400_000_000, "active_before": 2_200_000_000,
                "active_after": 2_200_000_000, "cache_before": 0, "cache_after": min(c, 30_000_000),
                "process_rss": 1_700_000_000, "memory_limit": 80 * 10**9,
                "started_at": 1.7e9 + 9 * r, "error": ""}
    rows = [row(c, r) for r in range(5) for c in limits]
    result = SweepResult(runs=runs_frame(rows), params=["cache_limit"], label="45 runs", unit="tokens")
    path = os.path.join(tempfile.mkdtemp(), "r.html")
    start = time.perf_counter()
    result.to_html(path)
    print(json.dumps(time.perf_counter() - start))
""")


def render_once(tree: Path) -> float:
    env = {"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, "-c", TIMING], capture_output=True, text=True, cwd=tree,
                          timeout=300, env=env)
    if done.returncode:
        raise SystemExit(f"rendering failed in {tree}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    git = ["git", "-C", str(ROOT), "worktree"]
    with tempfile.TemporaryDirectory() as folder:
        before = Path(folder) / "before"
        added = subprocess.run([*git, "add", "--detach", str(before), BEFORE], capture_output=True, text=True)
        if added.returncode:
            raise SystemExit(f"cannot check out {BEFORE} (a full clone is needed): {added.stderr.strip()}")
        try:
            times: dict[str, list[float]] = {"before": [], "after": []}
            for _ in range(ROUNDS):
                times["before"].append(render_once(before))
                times["after"].append(render_once(ROOT))
        finally:
            subprocess.run([*git, "remove", "--force", str(before)], check=False, capture_output=True)
    medians = {name: statistics.median(values) for name, values in times.items()}
    lines = [f"to_html of a 45-run result (9 cache limits x 5 repeats), {ROUNDS} fresh processes each, "
             "alternating",
             f"before the redesign ({BEFORE}): median {medians['before'] * 1000:.0f} ms "
             f"(range {min(times['before']) * 1000:.0f}..{max(times['before']) * 1000:.0f})",
             f"after (this checkout):       median {medians['after'] * 1000:.0f} ms "
             f"(range {min(times['after']) * 1000:.0f}..{max(times['after']) * 1000:.0f}); "
             "it draws 5 figures where the old report drew 3",
             f"after / before: {medians['after'] / medians['before']:.2f}"]
    publish("report_render.txt", "\n".join(lines))


if __name__ == "__main__":
    main()
