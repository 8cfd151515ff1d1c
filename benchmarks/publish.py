"""Publish the measured benchmarks: the figures and the generated blocks of BENCHMARKS.md.

Reads only files under benchmarks/results/ (saved sweeps through ``mlxtune.load``, the index
JSONs and the text files the benchmark scripts wrote) and measures nothing, so it is quick and
gives the same bytes every time. BENCHMARKS.md is prose written by hand around blocks marked
``<!-- generated:NAME -->`` ... ``<!-- /generated:NAME -->``; this script rewrites only what lies
between the marks, so every measured number in the file comes from a results file.

    python benchmarks/publish.py            # write benchmarks/results/figures/*.png and BENCHMARKS.md
    python benchmarks/publish.py --check    # exit 1 if BENCHMARKS.md is not what the results give
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import statistics
import sys
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

import mlxtune
from mlxtune import plots
from mlxtune.files import write_atomic
from mlxtune.plots import figure_bytes
from mlxtune.present import summary_table
from mlxtune.report import code_block, markdown_table
from mlxtune.stats import median_ci, ratio_ci
from mlxtune.units import UNLIMITED, format_size
from mlxtune.view import limit_text
from mlxtune.workloads.models import MODEL_SIZES

if TYPE_CHECKING:
    from matplotlib.figure import Figure

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
GPU = RESULTS / "gpu"
FIGURES = RESULTS / "figures"
DOCUMENT = ROOT / "BENCHMARKS.md"
_BLOCK = re.compile(r"(<!-- generated:([\w-]+) -->\n)(.*?)(<!-- /generated:\2 -->)", re.DOTALL)


class PublishError(Exception):
    """A results file is missing or not as the benchmark scripts write it; the message says which."""


# -- the measured sweeps ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Sweep:
    """One saved sweep: ``name`` in the index JSON of its run; ``what`` and ``variant`` name it here."""

    key: str
    index_path: Path
    name: str
    machine: str
    what: str
    variant: str = ""

    @cached_property
    def index(self) -> dict[str, Any]:
        return _read_json(self.index_path)

    @property
    def entry(self) -> dict[str, Any]:
        sweeps = self.index.get("sweeps", {})
        if self.name not in sweeps:
            raise PublishError(f"{_rel(self.index_path)} has no sweep {self.name!r}; it has {sorted(sweeps)}")
        return sweeps[self.name]

    @property
    def dtype(self) -> str:
        """The model's weights as people say it ("float16", "4-bit"); "" for a synthetic workload."""
        if self.name == "churn":
            return ""
        return "4-bit" if self.name == "q4" else MODEL_SIZES[self.index["arguments"]["size"]]["dtype"]

    @property
    def title(self) -> str:
        """"H100 · 1.1B float16 decode, mlx-lm as is": headings, figure titles and legends."""
        if not self.dtype:
            return f"{self.machine} · {self.what}"
        parameters = self.index["parameters"]
        size = f"{parameters / 1e9:.1f}B" if parameters >= 1e9 else f"{parameters / 1e6:.0f}M"
        return f"{self.machine} · {size} {self.dtype} {self.what}"

    @property
    def short(self) -> str:
        """"H100 float16, no clearing": table columns."""
        return f"{self.machine} {self.dtype or self.what}{self.variant}"

    @cached_property
    def result(self) -> mlxtune.SweepResult:
        path = self.index_path.with_name(self.entry["files"][0])
        try:
            return dataclasses.replace(mlxtune.load(path), label=self.title)
        except FileNotFoundError:
            raise PublishError(f"{_rel(path)} is missing: run the benchmark that writes it") from None
        except ValueError as exc:
            raise PublishError(str(exc)) from None

    @cached_property
    def summary(self) -> pd.DataFrame:
        return self.result.summary_frame().set_index("cache_limit", drop=False)

    @property
    def limits(self) -> list[int]:
        return [int(v) for v in self.summary["cache_limit"]]

    def point(self, limit: int) -> pd.Series:
        return self.summary.loc[limit]

    def ratio(self, limit: int, reference: int) -> tuple[float, float, float]:
        """Throughput at ``limit`` over throughput at ``reference``: Hodges-Lehmann estimate, 95% CI."""
        runs = self.result.runs[self.result.runs["error"] == ""]
        at = runs.groupby("cache_limit")["throughput"]
        return ratio_ci(at.get_group(limit), at.get_group(reference))

    @property
    def repeats(self) -> int:
        return int(self.result.options.get("repeats", 0))

    @property
    def spread(self) -> str:
        """What the error bars of a "ci" figure are: below 6 runs the interval is the runs' range."""
        return "95% CI" if self.repeats >= 6 else f"range of {self.repeats} runs"


def _sweeps(index: Path, prefix: str, machine: str, names: Sequence[str]) -> dict[str, Sweep]:
    return {f"{prefix}-{n}": Sweep(f"{prefix}-{n}", index, n, machine, *WORKLOADS[n]) for n in names}


#: Sweep name in the benchmark scripts -> (what it measures, its variant in a short column name).
WORKLOADS = {
    "lm": ("decode, mlx-lm as is", ""),
    "avoid": ("decode, mlx-lm clearing avoided", ", no clearing"),
    "q4": ("decode", ""),
    "churn": ("allocator churn", ""),
}
DECODE = ("lm", "avoid", "q4")
SWEEPS: dict[str, Sweep] = {
    **_sweeps(GPU / "run2" / "gpu_sweep.json", "gpu", "H100", ["lm"]),
    **_sweeps(GPU / "run3" / "gpu_sweep.json", "gpu", "H100", ["avoid", "q4", "churn"]),
    **_sweeps(RESULTS / "cpu_sweep.json", "cpu", "CPU", [*DECODE, "churn"]),
}
#: The run with 5 repeats whose saved files did not all come back: cited from what it printed.
RUN1_CONSOLE = GPU / "run1" / "console.txt"
GPU_ACCURACY = GPU / "run2" / "lm_accuracy.json"
CPU_ACCURACY = RESULTS / "lm_accuracy.json"


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise PublishError(f"{_rel(path)} is missing: run the benchmark that writes it") from None
    except json.JSONDecodeError as exc:
        raise PublishError(f"{_rel(path)} is not valid JSON ({exc.msg} at line {exc.lineno})") from None


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise PublishError(f"{_rel(path)} is missing: run the benchmark that writes it") from None


def _match(path: Path, pattern: str) -> re.Match[str]:
    """The first match of ``pattern`` in a results text file, or a PublishError naming both."""
    found = re.search(pattern, _read_text(path), re.MULTILINE)
    if found is None:
        raise PublishError(f"{_rel(path)}: no line matches {pattern!r}; was it written by another version?")
    return found


# -- formatting ---------------------------------------------------------------------------------


def times(estimate: float, low: float, high: float) -> str:
    """A ratio with its interval: "×1.27 (1.07–1.47)"."""
    return f"×{estimate:.2f} ({low:.2f}–{high:.2f})"


def percent(estimate: float, low: float, high: float) -> str:
    """A share with its interval: "79% (68–94%)"."""
    return f"{estimate:.0%} ({low * 100:.0f}–{high:.0%})"


def separates(low: float, high: float) -> bool:
    """Whether a ratio's 95% interval leaves out 1 (no difference)."""
    return low > 1 or high < 1


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], labels: int = 1,
          bold: Sequence[Sequence[bool]] | None = None) -> str:
    """A pipe table of cells that are Markdown already (code spans stay code); ``labels`` left-aligned."""
    def cell(text: str, strong: bool) -> str:
        text = text.replace("|", "\\|")
        return f"**{text}**" if strong and text else text

    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join(":---" if i < labels else "---:" for i in range(len(headers))) + "|"]
    for r, row in enumerate(rows):
        lines.append("| " + " | ".join(cell(c, bool(bold and bold[r][i])) for i, c in enumerate(row)) + " |")
    return "\n".join(lines)


def _figure(name: str, figure: Figure, figs: dict[str, bytes]) -> str:
    """Keep a figure's PNG for writing; return its Markdown image link relative to the document."""
    figs[name] = figure_bytes(figure, "png")
    return f"![{name.removesuffix('.png')}]({_rel(FIGURES / name)})"


# -- generated blocks ---------------------------------------------------------------------------


def block_answer(figs: dict[str, bytes]) -> str:
    gpu = [SWEEPS[f"gpu-{n}"] for n in DECODE]
    lines = []
    for sweep in gpu:
        zero, unlimited = sweep.point(0), sweep.point(UNLIMITED)
        lines.append(
            f"- **{sweep.title}:** cache limit 0 decodes at **{percent(*sweep.ratio(0, UNLIMITED))}** of "
            f"the unlimited speed, to save the **{format_size(int(unlimited['cache_after_max']))}** of cache "
            f"that unlimited holds (footprint {format_size(int(zero['footprint']))} at 0, "
            f"{format_size(int(unlimited['footprint']))} unlimited)."
        )
    small = [limit for limit in gpu[0].limits if 0 < limit < UNLIMITED][:2]
    shares = "; ".join(
        f"{s.short} " + ", ".join(f"{percent(*s.ratio(v, UNLIMITED))} at {limit_text(v)}" for v in small)
        for s in gpu
    )
    lines.append(f"- **A few MB of cache gives the speed back** (share of unlimited speed): {shares}.")
    cpu = [SWEEPS[f"cpu-{n}"] for n in DECODE]
    ratios = "; ".join(f"{s.short} {times(*s.ratio(UNLIMITED, 0))}" for s in cpu)
    footprints = "; ".join(f"{s.short} {format_size(int(s.point(0)['footprint']))} at 0, "
                           f"{format_size(int(s.point(UNLIMITED)['footprint']))} unlimited" for s in cpu)
    apart = [s.short for s in cpu if separates(*s.ratio(UNLIMITED, 0)[1:])]
    verdict = (f"the interval leaves out ×1 for {', '.join(apart)}" if apart else
               "no interval leaves out ×1, so the limit changed no speed these runs could measure")
    lines.append(f"- **CPU backend (small model):** unlimited/0 {ratios}: {verdict}. The "
                 f"footprint moves a little: {footprints}.")
    churn = SWEEPS["gpu-churn"]
    low, high = churn.ratio(UNLIMITED, 0)[1:]
    lines.append(f"- **{churn.title}:** unlimited/0 {times(*churn.ratio(UNLIMITED, 0))}: "
                 + ("the interval leaves out ×1." if separates(low, high) else "no effect shown."))
    link = _figure("gpu-decode-throughput.png", plots.comparison(
        [s.result for s in gpu], kind="throughput", spread="ci",
        title=f"H100: decode speed against cache limit (median, {gpu[0].spread})"), figs)
    return "\n".join(lines) + "\n\n" + link


#: The sweeps in the per-limit tables, as columns.
COLUMNS = ("gpu-lm", "gpu-avoid", "gpu-q4", "gpu-churn", "cpu-lm", "cpu-avoid")


def _per_limit_table(cell: Callable[[Sweep, int], tuple[str, bool]]) -> str:
    sweeps = [SWEEPS[k] for k in COLUMNS]
    limits = sorted(set().union(*(s.limits for s in sweeps)))
    rows, bold = [], []
    for limit in limits:
        cells = [cell(s, limit) if limit in s.limits else ("–", False) for s in sweeps]
        rows.append([limit_text(limit)] + [text for text, _ in cells])
        bold.append([False] + [strong for _, strong in cells])
    return table(["cache limit"] + [s.short for s in sweeps], rows, bold=bold)


def block_kept(figs: dict[str, bytes]) -> str:
    def cell(sweep: Sweep, limit: int) -> tuple[str, bool]:
        if limit >= UNLIMITED:
            return "100% (reference)", False
        estimate, low, high = sweep.ratio(limit, UNLIMITED)
        return percent(estimate, low, high), separates(low, high)

    return _per_limit_table(cell)


def block_held(figs: dict[str, bytes]) -> str:
    def cell(sweep: Sweep, limit: int) -> tuple[str, bool]:
        point = sweep.point(limit)
        return f"{format_size(int(point['cache_after_max']))} / {format_size(int(point['footprint']))}", False

    return _per_limit_table(cell)


def block_setup(figs: dict[str, bytes]) -> str:
    runs = {"gpu/run2": SWEEPS["gpu-lm"], "gpu/run3": SWEEPS["gpu-q4"], "cpu_sweep": SWEEPS["cpu-lm"]}
    gpu = "PYTHONPATH=. /root/mlx-cuda/bin/python benchmarks/gpu_sweep.py --out DIR"
    commands = {"gpu/run2": f"{gpu} --only lm --repeats 10",
                "gpu/run3": f"{gpu} --only q4,avoid,churn --repeats 10",
                "cpu_sweep": ".venv/bin/python benchmarks/cpu_sweep.py"}
    columns: dict[str, list[str]] = {}
    for run, sweep in runs.items():
        env, args, index = sweep.index["environment"], sweep.index["arguments"], sweep.index
        columns[run] = [
            f"`{_rel(sweep.index_path)}`",
            f"`{commands[run]}`",
            f"{env['device_name']} ({format_size(env['device_memory'])}), {env['backend']} backend",
            f"mlx {env['mlx']}, mlx-lm {env['mlx_lm']}, Python {env['python']}",
            f"{env['os']}",
            f"{env['date']}",
            f"`{index['model']}`: `tiny_model(size=\"{args['size']}\")`, {index['parameters']:,} parameters, "
            f"{MODEL_SIZES[args['size']]['dtype']}, random weights",
            f"prompt {args['prompt_tokens']} tokens, generate {args['gen_tokens']}",
            ", ".join(f"`{name}`" for name in index["sweeps"])
            + (f" (churn: {args['churn_buffers']} buffers a run)" if "churn" in index["sweeps"] else ""),
            ", ".join(limit_text(v) for v in sweep.result.options["cache_limits"]),
            f"{args['repeats']} per limit, interleaved, after {args['warmup']} warm-up",
        ]
    names = ["index file", "command", "device", "versions", "OS", "started", "model", "workload", "sweeps",
             "cache limits", "repeats"]
    rows = [[name] + [columns[run][i] for run in runs] for i, name in enumerate(names)]
    header = _match(RUN1_CONSOLE, r"^gpu_sweep: backend .*$").group(0)
    plan = _match(RUN1_CONSOLE, r"^cache limits .*$").group(0)
    run1 = (f"An earlier H100 run, `{_rel(RUN1_CONSOLE.parent)}/`, ran all four sweeps with the same "
            f"command without `--only` and `--repeats`; its `console.txt` says: \"{header}\", \"{plan}\".")
    return table(["", *runs], rows, labels=len(runs) + 1) + "\n\n" + run1


def _figure_title(sweep: Sweep, kind: str) -> str:
    return {
        "tradeoff": f"{sweep.title}: speed against memory (median, {sweep.spread})",
        "throughput": f"{sweep.title}: speed against cache limit (median, {sweep.spread})",
        "memory": f"{sweep.title}: memory against cache limit",
    }[kind]


def _sweep_section(sweep: Sweep, figs: dict[str, bytes], kinds: Sequence[str]) -> str:
    result = sweep.result
    rec = result.recommend()
    ratio = sweep.ratio(UNLIMITED, 0)
    links = [_figure(f"{sweep.key}-{kind}.png", result.plot(
        kind=kind, title=_figure_title(sweep, kind), **({} if kind == "memory" else {"spread": "ci"})), figs)
        for kind in kinds]
    verdict = "leaves out ×1: the two differ" if separates(*ratio[1:]) else "holds ×1: no difference shown"
    html = sweep.index_path.with_name(sweep.entry["files"][2])
    parts = [
        f"#### {sweep.title}",
        f"`{result.workload}`: {len(result.runs)} runs, {result.failed_runs} failed "
        f"([HTML report]({_rel(html)})).",
        markdown_table(summary_table(result, rec)),
        f"Recommendation (`result.recommend()`): {rec.reason}",
        f"Unlimited against 0, from all runs of the two points: {times(*ratio)}; the interval {verdict}.",
    ]
    return "\n\n".join(parts + ([" ".join(links)] if links else []))


def block_gpu_lm(figs: dict[str, bytes]) -> str:
    return _sweep_section(SWEEPS["gpu-lm"], figs, ("tradeoff", "memory"))


def block_gpu_before(figs: dict[str, bytes]) -> str:
    sys.path.insert(0, str(Path(__file__).parent))
    from gpu_sweep import SEEN_BEFORE

    sweep = SWEEPS["gpu-lm"]
    rows = []
    for text, before in SEEN_BEFORE.items():
        point = sweep.point(mlxtune.parse_size(text))
        rows.append([text, f"{before}", f"{point['throughput_median']:.1f}",
                     f"{point['throughput_ci_low']:.1f}–{point['throughput_ci_high']:.1f}",
                     f"{point['throughput_median'] / before:.2f}"])
    headers = ["cache limit", "before (tokens/s)", "now: median", "now: 95% CI", "now/before"]
    accuracy = _read_json(GPU_ACCURACY)
    tool = ", ".join(f"{r['mlx_lm_benchmark']['generation_tps']:.1f}" for r in accuracy["rounds"])
    ours = ", ".join(f"{r['lm_workload']['generation_tps']:.1f}" for r in accuracy["rounds"])
    low, high = SEEN_BEFORE["0"], SEEN_BEFORE["unlimited"]
    run1 = dict(_run1_ratios())
    generation = accuracy["generation_tps"]
    host = (
        f"Same host, same session ({accuracy['environment']['date']}): `python -m mlx_lm.benchmark` on the "
        f"same model (prompt {accuracy['prompt_tokens']}, generate {accuracy['gen_tokens']}, "
        f"{accuracy['trials']} trials × {len(accuracy['rounds'])} rounds, mlx-lm's own cache settings) "
        f"decoded **{generation['mlx_lm_benchmark']:.1f} tokens/s** (rounds: {tool}); mlxtune's lm workload "
        f"beside it {generation['lm_workload']:.1f} (rounds: {ours}), {accuracy['difference']:+.1%} "
        f"(`{_rel(GPU_ACCURACY)}`). The earlier measurement had {high} tokens/s unlimited. Its ratio "
        f"unlimited/0 was ×{high / low:.2f}; here {times(*sweep.ratio(UNLIMITED, 0))}, and {run1['lm']} in "
        "run1."
    )
    return table(headers, rows) + "\n\n" + host


def _run1_ratios() -> list[tuple[str, str]]:
    """(sweep name, "×1.51 (1.07–1.92)") for each sweep in run 1's console output."""
    found = re.findall(r"^== (\w+): .*?^unlimited vs 0B: x([\d.]+) \(95% CI ([\d.]+)\.\.([\d.]+)\)",
                       _read_text(RUN1_CONSOLE), re.MULTILINE | re.DOTALL)
    if not found:
        raise PublishError(f"{_rel(RUN1_CONSOLE)}: no 'unlimited vs 0B' lines after '== NAME:' headers")
    return [(name, times(float(e), float(lo), float(hi))) for name, e, lo, hi in found]


def block_gpu_run1(figs: dict[str, bytes]) -> str:
    repeats = _match(RUN1_CONSOLE, r"(\d+) repeats interleaved").group(1)
    rows = []
    for name, ratio in _run1_ratios():
        later = SWEEPS[f"gpu-{name}"]
        rows.append([later.title, ratio, times(*later.ratio(UNLIMITED, 0))])
    headers = ["sweep", f"run1 ({repeats} repeats)", f"run2/run3 ({SWEEPS['gpu-lm'].repeats} repeats)"]
    return "Unlimited/0, with 95% intervals:\n\n" + table(headers, rows)


def block_gpu_more(figs: dict[str, bytes]) -> str:
    lm, q4 = SWEEPS["gpu-lm"], SWEEPS["gpu-q4"]
    sections = [_sweep_section(SWEEPS["gpu-avoid"], figs, ("memory",)),
                _sweep_section(q4, figs, ("tradeoff",)),
                _sweep_section(SWEEPS["gpu-churn"], figs, ("throughput",))]
    figure = plots.comparison([lm.result, q4.result], kind="tradeoff",
                              title="H100: float16 against 4-bit, all nine cache limits each (median, IQR)")
    for label in [t for ax in figure.axes for t in ax.texts if t.get_gid() == "limit-label"]:
        label.remove()  # nine limits within a few MB of each other: their labels overprint
    link = _figure("gpu-float16-vs-4bit-tradeoff.png", figure, figs)
    caption = ("Each cluster is one model at all nine cache limits (0 is its leftmost point): the gap "
               "between the clusters is what 4-bit weights save, the width of a cluster what the cache "
               "limit saves.")
    return "\n\n".join(sections) + "\n\n" + link + "\n\n" + caption


def block_verdicts(figs: dict[str, bytes]) -> str:
    rows = []
    for sweep in SWEEPS.values():
        rec, ratio = sweep.result.recommend(), sweep.ratio(UNLIMITED, 0)
        rows.append([sweep.title, f"{sweep.repeats}", limit_text(rec.cache_limit) if rec.found else "none",
                     "yes" if rec.within_noise else "no", times(*ratio),
                     "yes" if separates(*ratio[1:]) else "no"])
    headers = ["sweep", "repeats", "`recommend()`", "all points within the noise",
               "unlimited/0", "its interval leaves out ×1"]
    return table(headers, rows)


def block_cpu(figs: dict[str, bytes]) -> str:
    decode = [SWEEPS[f"cpu-{n}"] for n in DECODE]
    load = _match(RESULTS / "overhead.txt", r"(\d+) CPUs, load average ([\d.]+) at start")
    intervals = [(s, limit) for s in decode for limit in s.limits if limit < UNLIMITED]
    apart = [f"{s.short} at {limit_text(limit)}" for s, limit in intervals
             if separates(*s.ratio(limit, UNLIMITED)[1:])]
    note = (
        f"{decode[0].index['environment']['device_name']}, {load.group(1)} CPUs "
        f"(load average {load.group(2)} when `overhead.py` started after the sweeps, in `overhead.txt`), "
        f"{decode[0].repeats} repeats: "
        f"below 6 runs the \"95% CI\" columns are the range of the runs. Of the "
        f"{len(intervals)} intervals of a decode limit against unlimited, "
        + (f"{len(apart)} leave out 100% ({'; '.join(apart)})" if apart else "none leaves out 100%")
        + f"; chance alone would give about {len(intervals) / 20:.1f}."
    )
    link = _figure("cpu-decode-throughput.png", plots.comparison(
        [s.result for s in decode], kind="throughput", spread="ci",
        title=f"CPU: decode speed against cache limit (median, {decode[0].spread})"), figs)
    sections = [_sweep_section(decode[0], figs, ("tradeoff", "memory"))]
    sections += [_sweep_section(s, figs, ()) for s in (*decode[1:], SWEEPS["cpu-churn"])]
    return note + "\n\n" + link + "\n\n" + "\n\n".join(sections)


def _overhead_rows(path: Path) -> list[list[str]]:
    magic = {m.group(1): (m.group(2), m.group(3)) for m in re.finditer(
        r"^  (bare|%%time|%%mlxmem(?: -q)?)\s+([\d.]+)\s+\[[^\]]*\](?:\s+adds\s+([\d.]+))?",
        _read_text(path), re.MULTILINE)}
    if not {"bare", "%%time", "%%mlxmem", "%%mlxmem -q"} <= magic.keys():
        raise PublishError(f"{_rel(path)}: expected lines for bare, %%time, %%mlxmem and %%mlxmem -q")
    factor = _match(path, r"%%mlxmem adds ([\d.]+)x what %%time adds \((.*?)\)")
    snap = _match(path, r"snapshot\(\) costs ([\d.]+) us hot \((.*?)\) and ([\d.]+) us cold \((.*?)\)")
    return [
        ["`%%mlxmem` on an empty cell",
         f"adds {magic['%%mlxmem'][1]} µs to a bare {magic['bare'][0]} µs `run_cell`, where `%%time` adds "
         f"{magic['%%time'][1]} µs: {factor.group(1)}× ({factor.group(2)}); `%%mlxmem -q` adds "
         f"{magic['%%mlxmem -q'][1]} µs"],
        ["one `snapshot()`",
         f"{snap.group(1)} µs back to back ({snap.group(2)}), {snap.group(3)} µs after other work "
         f"({snap.group(4)}); most of it is one cache-limit read, which synchronizes MLX's CPU stream"],
    ]


def _sweep_cost_rows(path: Path) -> list[list[str]]:
    engine = re.findall(r"^progress=(\w+): .*? engine [\d.]+ms = ([\d.]+)% of the total "
                        r"\(([\d.]+)ms per run\)", _read_text(path), re.MULTILINE)
    if not engine:
        raise PublishError(f"{_rel(path)}: no 'progress=...: sweep ...' lines")
    return [["sweep engine, runs of ~0.5 s", "; ".join(
        f"progress bar {key}: {per_run} ms a run, {share}% of the sweep" for key, share, per_run in engine)]]


def _long_sweep_rows(path: Path) -> list[list[str]]:
    drift = _match(path, r"first 100 ([\d.]+)ms, last 100 ([\d.]+)ms")
    runs = _match(path, r"^(\d+) runs in ([\d.]+)s; median run ([\d.]+)ms")
    rss = _match(path, r"\(([+-]\d+) bytes per run\)")
    heap = _match(path, r"(\d+) bytes per run, against (\d+) bytes per kept record")
    return [[f"a sweep of {runs.group(1)} short runs",
             f"engine {drift.group(1)} ms a run over the first 100, {drift.group(2)} ms over the last 100; "
             f"process RSS {rss.group(1)} B a run; Python heap {heap.group(1)} B a run against "
             f"{heap.group(2)} B per kept record"]]


def _panel_rows(path: Path) -> list[list[str]]:
    text = _read_text(path)
    gaps = {m[0]: m for m in re.findall(
        r"^(bare|panel)\s+(\d+) runs in ([\d.]+) s; gap between runs: median (\d+) us \(first 100 runs\), "
        r"(\d+) us \(last 100\)", text, re.MULTILINE)}
    heaps = dict(re.findall(r"^(bare|panel)\s+heap growth .*?: (\d+) bytes per run", text, re.MULTILINE))
    if {"bare", "panel"} - gaps.keys() or {"bare", "panel"} - heaps.keys():
        raise PublishError(f"{_rel(path)}: expected 'gap between runs' and 'heap growth' lines for bare "
                           "and panel")
    return [[f"the notebook panel over {gaps['panel'][1]} short runs", "; ".join(
        f"{key}: {seconds} s, gap between runs {first} µs over the first 100, {last} µs over the last 100, "
        f"heap {heaps[key]} B a run" for key, _, seconds, first, last in gaps.values())]]


def _report_scale_rows(path: Path) -> list[list[str]]:
    scales = re.findall(r"^\s*([\d,]+) runs: (.*)$", _read_text(path), re.MULTILINE)
    if not scales:
        raise PublishError(f"{_rel(path)}: no 'N runs: ...' lines")
    most, line = max(scales, key=lambda found: int(found[0].replace(",", "")))
    ms = dict(re.findall(r"(\w+) ([\d.]+)ms", line))
    size = dict(re.findall(r"(HTML|JSON) ([\d.]+MB)", line))
    rounds = _match(path, r"trend ([+-]\d+) bytes per round \((.*?)\)")
    return [[f"reports of {most} runs",
             f"`summary()` {ms.get('summary')} ms; figures {ms.get('tradeoff')}, {ms.get('throughput')}, "
             f"{ms.get('memory')} ms; HTML {ms.get('to_html')} ms ({size.get('HTML')}); JSON "
             f"{ms.get('to_json')} ms ({size.get('JSON')}); `load` {ms.get('load')} ms. Heap "
             f"{rounds.group(1)} B a round of {rounds.group(2)}"]]


def _report_render_rows(path: Path) -> list[list[str]]:
    found = _match(path, r"before the redesign \((\w+)\): median (\d+) ms.*?\n"
                         r"after \(this checkout\):\s+median (\d+) ms.*?; (.*?)\n"
                         r"after / before: ([\d.]+)")
    return [["a 45-run HTML report, before the one-view redesign and after",
             f"{found.group(3)} ms against {found.group(2)} ms at `{found.group(1)}`: "
             f"{found.group(5)}× ({found.group(4)})"]]


def _isolation_rows(path: Path) -> list[list[str]]:
    start = _match(path, r"engine start \(controller \+ 1 engine, connected\): ([\d.]+) s; "
                         r"the engine's first sweep .*?: ([\d.]+) s")
    ratio = _match(path, r"in the engine / in this process: ([\d.]+) \(95% CI ([\d.]+) \.\. ([\d.]+)\)")
    sweep = _match(path, r"in-process sweep: median ([\d.]+) s")
    added = _match(path, r"isolation adds ([+-][\d.]+) s a sweep outside the runs: ([+-][\d.]+%)")
    return [["a 25-run lm sweep in a clean ipyparallel engine (`isolate=True`)",
             f"once the engine is up: {added.group(1)} s a sweep outside the runs ({added.group(2)} of a "
             f"{sweep.group(1)} s sweep); whole sweeps {ratio.group(1)}× the in-process wall time "
             f"(95% CI {ratio.group(2)} .. {ratio.group(3)}); starting the engine {start.group(1)} s, "
             f"its first sweep {start.group(2)} s"]]


def _accuracy(path: Path) -> str:
    doc = _read_json(path)
    env, tps = doc["environment"], doc["generation_tps"]
    return (f"{env['device_name']} ({env['backend']}), model {doc['size']}: lm workload "
            f"{tps['lm_workload']:.2f} tokens/s, mlx_lm.benchmark {tps['mlx_lm_benchmark']:.2f}: "
            f"{doc['difference']:+.1%}")


#: Each text result of the toolkit's own cost, and what reads it into table rows.
COST_READERS: dict[str, Callable[[Path], list[list[str]]]] = {
    "overhead.txt": _overhead_rows,
    "sweep_cost.txt": _sweep_cost_rows,
    "long_sweep.txt": _long_sweep_rows,
    "panel_long_sweep.txt": _panel_rows,
    "report_scale.txt": _report_scale_rows,
    "report_render.txt": _report_render_rows,
    "isolation_cost.txt": _isolation_rows,
}


def block_cost(figs: dict[str, bytes]) -> str:
    rows = [[*row, f"`{name}`"] for name, read in COST_READERS.items() for row in read(RESULTS / name)]
    rows.append(["lm workload's decode tokens/s against `python -m mlx_lm.benchmark`",
                 f"{_accuracy(GPU_ACCURACY)}; {_accuracy(CPU_ACCURACY)}",
                 f"`{_rel(GPU_ACCURACY)}`, `{_rel(CPU_ACCURACY)}`"])
    raw = [f"<details><summary><code>{_rel(RESULTS / name)}</code></summary>\n\n"
           f"{code_block(_read_text(RESULTS / name).rstrip(), 'text')}\n\n</details>"
           for name in COST_READERS]
    return table(["what", "measured", "file"], rows, labels=3) + "\n\n" + "\n\n".join(raw)


# -- evidence for the recommendation, and memory over time (H200, 2026-12-02) ----------------------

H200 = GPU / "run4"


def block_decision(figs: dict[str, bytes]) -> str:
    """The last lines of decision_quality.txt: both rules on every saved GPU sweep."""
    text = _read_text(RESULTS / "decision_quality.txt")
    totals = text.split("== All sweeps", 1)
    if len(totals) != 2:
        raise PublishError(f"{_rel(RESULTS / 'decision_quality.txt')}: no '== All sweeps' section")
    return code_block("== All sweeps" + totals[1].rstrip(), "text")


def block_h200(figs: dict[str, bytes]) -> str:
    """The 15-round reference sweep and the adaptive sweep of the same model, side by side."""
    reference = mlxtune.load(H200 / "gpu_evidence-reference.json")
    adaptive = mlxtune.load(H200 / "gpu_evidence-adaptive.json")
    columns = [(reference, "15 rounds"), (adaptive, "adaptive")]
    points = {name: result.decision().points.set_index("cache_limit") for result, name in columns}
    rows = []
    for limit in points["15 rounds"].index:
        row = [limit_text(int(limit))]
        for _, name in columns:
            p = points[name].loc[limit]
            bounds = f"[{p['ratio_low']:.2f}, {p['ratio_high']:.2f}]"
            row.append(f"{p['speed']:.0f} tok/s · {p['ratio']:.2f}× {bounds} · {p['verdict']}")
        rows.append(row)
    lines = [table(["cache limit", *(f"{name} ({len(r.runs)} runs)" for r, name in columns)], rows)]
    for result, name in columns:
        rec = result.recommend()
        state = "decided" if rec.decided else "undecided"
        lines.append(f"- **{name}** ({result.stop_reason or 'every round run'}): {state}; {rec.reason}")
    env = reference.environment
    lines.append(f"\nMeasured on {env['device_name']} ({env['backend']}), mlx {env['mlx']}, "
                 f"mlx-lm {env['mlx_lm']}, {env['date'][:10]}; files in `{_rel(H200)}`.")
    figure = reference.plot("order", title="H200: every run of the 15-round sweep in the order run")
    lines.append(_figure("h200-run-order.png", figure, figs))
    return "\n".join(lines)


def block_chat(figs: dict[str, bytes]) -> str:
    """Memory after each turn of the chat, and its speed, at cache limits 0, 20MB and unlimited."""
    result = mlxtune.load(H200 / "gpu_evidence-chat.json")
    ok = result.runs[result.runs["error"] == ""]
    turns = sorted(int(c[4:-7]) for c in ok.columns if c.startswith("turn") and c.endswith("_memory"))
    rows = []
    for limit, runs in ok.groupby("cache_limit"):
        held = [format_size(runs[f"turn{t}_memory"].median()) for t in turns]
        rows.append([limit_text(int(limit)), *held, format_size(runs["footprint_peak"].max()),
                     f"{runs['throughput'].median():.0f}"])
    headers = ["cache limit", *(f"after turn {t}" for t in turns), "peak (sampled)", "tokens/s"]
    figure = result.plot("timeline", title="H200 chat: memory during one conversation at each cache limit")
    return table(headers, rows) + "\n\n" + _figure("h200-chat-timeline.png", figure, figs)


PAIRED = GPU / "run5"
#: The H200 sittings of paired_vs_runs.py: folder, and what its paired generations were.
PAIRED_SITTINGS = (
    ("runlength", "a generation = a run's work (prompt 512, 256 tokens), mlx-lm as is"),
    ("", "generations of 2,048 tokens, mlx-lm as is"),
    ("avoid", "generations of 2,048 tokens, mlx-lm's clearing avoided"),
)


def _answer(decided: bool, pick: int | None) -> str:
    return ("none" if pick is None else limit_text(int(pick))) + ("" if decided else " (undecided)")


def block_paired(figs: dict[str, bytes]) -> str:
    """Paired within runs against whole runs on the H200, as measured, and the paired blocks judged
    again by the rule as it is now."""
    rows = []
    for folder, what in PAIRED_SITTINGS:
        found = _read_json(PAIRED / folder / "paired_vs_runs.json")
        for design in found["sweeps"]:
            entries = found["sweeps"][design]
            answers = ", ".join(_answer(e["decided"], e["pick"]) for e in entries)
            seconds = ", ".join(f"{e['measuring_seconds']:.0f}" for e in entries)
            now = ""
            if design == "paired":
                saved = (mlxtune.load(PAIRED / folder / f"paired-{n + 1}.json") for n in range(len(entries)))
                now = ", ".join(_answer(r.recommend().decided, r.recommend().cache_limit) for r in saved)
            name = f"paired: {what}" if design == "paired" else "whole runs, same sitting"
            rows.append([name, answers, seconds, now or "–"])
    headers = ["design", "answers as measured (bootstrap rule)", "seconds measuring", "same blocks, rule now"]
    lines = [table(headers, rows)]
    main = PAIRED / PAIRED_SITTINGS[0][0]
    blocks = [mlxtune.load(main / f"paired-{n + 1}.json").blocks for n in range(5)]
    offset, frames = 0, []
    for frame in blocks:
        frames.append(frame.assign(repeat=frame["repeat"] + offset))
        offset = int(frames[-1]["repeat"].max()) + 1
    pooled = mlxtune.SweepResult(runs=frames[0].iloc[:0], params=["cache_limit"],
                                 blocks=pd.concat(frames, ignore_index=True)).decision().points
    cells = [[limit_text(int(p.cache_limit)), f"{p.ratio:.3f} [{p.ratio_low:.3f}, {p.ratio_high:.3f}]",
              p.verdict] for p in pooled.itertuples()]
    lines += ["", "The five paired sweeps of the first row pooled, judged by the rule now (speed relative to "
              "the best, one-sided 95% bounds):", "",
              table(["cache limit", "relative speed", "verdict"], cells)]
    accuracy = _match(PAIRED / "lm_vs_mlx_lm.txt", r"ratio ([\d.]+) \[([\d.]+), ([\d.]+)\]")
    pairs = _match(PAIRED / "lm_vs_mlx_lm.txt",
                   r"(\d+) pairs alternating: lm ([\d.]+) tok/s, mlx-lm ([\d.]+)")
    lines.append(f"\n`lm` against mlx-lm's own `stream_generate` timing (as `mlx_lm.benchmark` runs it), "
                 f"{pairs[1]} pairs alternating in one process: {pairs[2]} against {pairs[3]} tokens/s, "
                 f"ratio {accuracy[1]} [{accuracy[2]}, {accuracy[3]}] (90%).")
    env = _read_json(main / "paired_vs_runs.json")["environment"]
    lines.append(f"\nMeasured on {env['device_name']} ({env['backend']}), mlx {env['mlx']}, "
                 f"mlx-lm {env['mlx_lm']}, {env['date'][:10]}; files in `{_rel(PAIRED)}`.")
    figure = mlxtune.load(PAIRED / "paired-3.json").plot(
        "order", title="H200: every block of one paired sweep, in the order run")
    lines.append(_figure("h200-paired-blocks.png", figure, figs))
    return "\n".join(lines)


#: The first live sitting that timed ``lm`` as it now stands (its steps last changed before it): its pairs
#: against mlx-lm and those of every sitting after it are pooled.
LM_AS_IT_STANDS = "run13"

#: The H200 sittings of the rule for blocks as it now stands (sign-test bounds), oldest first.
LIVE_SITTINGS = (
    ("run6", "sign-test bounds, compared with the highest median"),
    ("run7", "the same, compared with the reference, with the edge"),
    ("run9", "the same, blocks not sampled during their steps"),
    ("run13", "blocks of 6 steps, the edge between fast and the tolerance"),
    ("run14", "the same, running on until decided (paired sweeps only)"),
    ("run15", "the same, a point shown fast by its 99% bound"),
    ("run16", "the same again (paired sweeps only)"),
    ("run17", "the same, the reference given up only at 99%, judging paced"),
    ("run18", "the same again (paired sweeps only; `lm` 80 pairs)"),
    ("run20", "the same, `lm` timed in pairs of 128-token generations"),
    ("run21", "the same again"),
)


def block_paired_live(figs: dict[str, bytes]) -> str:
    """The adaptive paired sweeps run live under the rule for blocks, against whole runs in the same
    sitting; the last sitting's blocks pooled; the last lm accuracy pairs."""
    sittings = [(folder, _read_json(GPU / folder / "paired_vs_runs.json")) for folder, _ in LIVE_SITTINGS]
    rows = []
    for (_, what), (_, found) in zip(LIVE_SITTINGS, sittings, strict=True):
        for design, entries in found["sweeps"].items():
            summary = found["summary"][design]
            rows.append([f"{design}: {what}" if design == "paired" else "whole runs, same sitting",
                         f"{summary['decided']} of {len(entries)}",
                         ", ".join(_answer(e["decided"], e["pick"]) for e in entries),
                         ", ".join(f"{e['measuring_seconds']:.0f}" for e in entries),
                         f"{summary['worst_pick_pooled_ratio']:.3f}"])
    headers = ["design", "decided", "answers", "seconds measuring", "worst pick, pooled"]
    last = sittings[-1][1]
    cells = [[limit_text(int(p["cache_limit"])),
              f"{p['ratio']:.3f} [{p['ratio_low']:.3f}, {p['ratio_high']:.3f}]", p["verdict"]]
             for p in last["pooled"]]
    goals = ", ".join(f"{name}: {'met' if ok else 'not met'}" for name, ok in last["goals"].items())
    checked = [(folder, found["lm_accuracy"]) for folder, found in sittings if found["lm_accuracy"]]
    accuracy_folder, accuracy = checked[-1]  # the last sitting that timed lm against mlx-lm
    medians = [statistics.median(pair[k] for pair in accuracy["pairs"]) for k in ("lm", "mlx_lm")]
    env = last["environment"]
    return "\n".join([
        table(headers, rows), "",
        f"The last sitting's paired blocks pooled (speed relative to the best, one-sided 95% bounds); "
        f"its goals: {goals}.", "",
        table(["cache limit", "relative speed", "verdict"], cells), "",
        f"`lm` against mlx-lm's own `stream_generate` timing in the sitting `{accuracy_folder}`, "
        f"{len(accuracy['pairs'])} pairs of {_pair_tokens(accuracy)}-token generations "
        f"alternating: {medians[0]:.1f} against {medians[1]:.1f} tokens/s, "
        f"ratio "
        f"{accuracy['ratio']:.3f} [{accuracy['low']:.3f}, {accuracy['high']:.3f}] (90%). "
        + _lm_pooled(checked), "",
        f"Measured on {env['device_name']} ({env['backend']}), mlx {env['mlx']}, mlx-lm {env['mlx_lm']}, "
        f"{env['date'][:10]}; files in `{_rel(GPU)}/` " + ", ".join(f"`{f}`" for f, _ in LIVE_SITTINGS) + ".",
    ])


def _pair_tokens(accuracy: dict[str, Any]) -> int:
    """The tokens each generation of an lm-against-mlx-lm pair decoded: 256 before a sitting recorded it."""
    return int(accuracy.get("gen_tokens", 256))


def _lm_pooled(checked: list[tuple[str, dict[str, Any]]]) -> str:
    """``lm`` against mlx-lm over every sitting since :data:`LM_AS_IT_STANDS`: the pairs pooled (their
    median's 90% interval), and the sittings' medians (a t interval over sittings, which also holds
    when a sitting's state moves all its pairs)."""
    names = [folder for folder, _ in LIVE_SITTINGS]
    since = [(folder, found) for folder, found in checked
             if names.index(folder) >= names.index(LM_AS_IT_STANDS)]
    ratios = [[pair["lm"] / pair["mlx_lm"] for pair in found["pairs"]] for _, found in since]
    lengths = sorted({_pair_tokens(found) for _, found in since})
    pooled = [r for sitting in ratios for r in sitting]
    low, high = median_ci(pooled, confidence=0.90)
    logs = np.log([statistics.median(sitting) for sitting in ratios])
    half = stats.t.ppf(0.95, len(logs) - 1) * logs.std(ddof=1) / np.sqrt(len(logs))
    mean = logs.mean()
    return (f"Every sitting from `{LM_AS_IT_STANDS}` on ({len(since)} sittings, {len(pooled)} pairs of "
            f"{' or '.join(map(str, lengths))}-token generations): pooled "
            f"{statistics.median(pooled):.3f} [{low:.3f}, {high:.3f}]; the sittings' medians "
            f"{np.exp(mean):.3f} [{np.exp(mean - half):.3f}, {np.exp(mean + half):.3f}] (90%, t over "
            f"sittings).")


def block_paired_noise(figs: dict[str, bytes]) -> str:
    """How noisy one block is, sampled or not, 12 or 24 steps (benchmarks/paired_noise.py), and the
    longer lm accuracy check of the same sitting."""
    noise = _read_text(GPU / "run8" / "paired_noise.txt").rstrip()
    accuracy = _read_text(GPU / "run9" / "lm_vs_mlx_lm.txt").rstrip()
    return code_block(noise, "text") + "\n\n" + code_block(accuracy, "text")


#: The sittings that measured block sizes by the time they take to a given interval width.
BLOCK_SIZE_SITTINGS = ("run10", "run11", "run12")


def block_paired_sizes(figs: dict[str, bytes]) -> str:
    """Block sizes measured by time to a given width (benchmarks/paired_noise.py), and the saved
    generations replayed through the rule (benchmarks/paired_replay.py)."""
    sittings = [_read_text(GPU / folder / "paired_noise.txt").rstrip() for folder in BLOCK_SIZE_SITTINGS]
    replay = _read_text(RESULTS / "paired_replay.txt").rstrip()
    return "\n\n".join(code_block(text, "text") for text in [*sittings, replay])


def block_sampler(figs: dict[str, bytes]) -> str:
    return code_block(_read_text(RESULTS / "sampler_cost.txt").rstrip(), "text")


BLOCKS: dict[str, Callable[[dict[str, bytes]], str]] = {
    "answer": block_answer,
    "kept": block_kept,
    "held": block_held,
    "setup": block_setup,
    "gpu-lm": block_gpu_lm,
    "gpu-before": block_gpu_before,
    "gpu-run1": block_gpu_run1,
    "gpu-more": block_gpu_more,
    "verdicts": block_verdicts,
    "cpu": block_cpu,
    "cost": block_cost,
    "decision": block_decision,
    "h200": block_h200,
    "chat": block_chat,
    "paired": block_paired,
    "paired-live": block_paired_live,
    "paired-noise": block_paired_noise,
    "paired-sizes": block_paired_sizes,
    "sampler": block_sampler,
}


# -- the document -------------------------------------------------------------------------------


def render(document: str, figs: dict[str, bytes]) -> str:
    """``document`` with every generated block rewritten; the figures drawn go into ``figs``."""
    found = [m.group(2) for m in _BLOCK.finditer(document)]
    missing = [name for name in BLOCKS if name not in found]
    unknown = [name for name in found if name not in BLOCKS]
    if missing or unknown:
        raise PublishError(f"{_rel(DOCUMENT)}: blocks missing {missing}, unknown {unknown}; expected "
                           f"<!-- generated:NAME --> ... <!-- /generated:NAME --> for {list(BLOCKS)}")
    contents = {name: BLOCKS[name](figs).strip() for name in BLOCKS}
    return _BLOCK.sub(lambda m: m.group(1) + contents[m.group(2)] + "\n" + m.group(4), document)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if BENCHMARKS.md or a figure differs from what the "
                             "results give")
    args = parser.parse_args(argv)
    figs: dict[str, bytes] = {}
    try:
        current = _read_text(DOCUMENT)
        updated = render(current, figs)
    except PublishError as exc:
        print(f"publish: {exc}", file=sys.stderr)
        return 2
    except KeyError as exc:
        print(f"publish: a results file lacks the entry {exc}: was it written by another version?",
              file=sys.stderr)
        return 2
    if args.check:
        stale = updated != current or any(
            not (FIGURES / n).is_file() or (FIGURES / n).read_bytes() != data for n, data in figs.items())
        print(f"{_rel(DOCUMENT)} is {'stale: run benchmarks/publish.py' if stale else 'up to date'}")
        return 1 if stale else 0
    FIGURES.mkdir(parents=True, exist_ok=True)
    for name, data in figs.items():
        path = FIGURES / name
        if not path.is_file() or path.read_bytes() != data:
            write_atomic(path, data)
    if updated != current:
        write_atomic(DOCUMENT, updated)
    print(f"wrote {len(figs)} figures in {_rel(FIGURES)} and {len(BLOCKS)} blocks of {_rel(DOCUMENT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
