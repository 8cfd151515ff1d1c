"""Words: the one place where numbers and states are put into text for people to read.

Every surface (the command line, the magic, the panel, reports) draws what this module writes, so a
limit, a point or a recommendation reads the same everywhere. Nothing here measures or decides, and
nothing here reads a result: words take values (a size, a :class:`~mlxtune.decision.Decision`), and
:mod:`mlxtune.present` builds what is shown of a result from them.
"""

from __future__ import annotations

import math
import sys
import unicodedata
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlxtune.files import iso_time
from mlxtune.units import UNLIMITED, format_size, limit_text, parse_size

if TYPE_CHECKING:
    from mlxtune.decision import Decision, FleetChoice, Noise
    from mlxtune.gates import Difference, GateFinding, GateResult

__all__ = [
    "LIMIT_AXES",
    "PROCESS_MEMORY",
    "cell_text",
    "count_text",
    "difference_text",
    "fleet_reason",
    "gate_finding_text",
    "gate_result_text",
    "headline",
    "limit_text",
    "noise_text",
    "number",
    "param_text",
    "point_text",
    "python_code",
    "ratio_text",
    "reason",
    "seconds_text",
    "swift_code",
    "terminal_text",
    "time_text",
]

#: Axes whose values are byte sizes (limits), shown as sizes.
LIMIT_AXES = ("cache_limit", "memory_limit")


def terminal_text(text: str) -> str:
    """``text`` safe to print on a terminal: control and format characters shown as escapes.

    Error messages, labels and grid values come from users and workloads; an escape sequence in
    them would otherwise move the cursor, recolour or retitle the terminal. Newlines and tabs stay.
    """
    return "".join(
        char if char in "\n\t" or unicodedata.category(char) not in ("Cc", "Cf")
        else char.encode("unicode_escape").decode("ascii")
        for char in text
    )


#: What the process memory column is on this platform: jetsam's number on macOS, the resident set elsewhere.
PROCESS_MEMORY = "physical footprint" if sys.platform == "darwin" else "resident set"


def count_text(count: int, noun: str) -> str:
    """"1 cycle", "2 cycles": a count and its noun, plural unless one."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def seconds_text(seconds: float) -> str:
    """A short time: ``812 µs``, ``3.41 ms``, ``2.05 s``."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def point_text(point: Mapping[str, Any], params: Sequence[str]) -> str:
    """A grid point in words: "cache limit 16MB, memory limit 1GB, dtype=q4"."""
    parts = []
    for name in params:
        value = _plain(point[name])
        if name in LIMIT_AXES:
            parts.append(f"{name.replace('_', ' ')} {limit_text(value)}")
        else:
            parts.append(f"{name}={value}")
    return ", ".join(parts)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _speed(value: float, unit: str) -> str:
    return f"{value:,.0f} {unit}/s" if abs(value) >= 1000 else f"{value:.4g} {unit}/s"


def _limits(rows: pd.DataFrame) -> str:
    return ", ".join(limit_text(v) for v in rows["cache_limit"])


def python_code(cache_limit: int | None, why_not: str = "") -> str:
    """The line that applies a cache limit in Python (a comment saying why not, without one)."""
    if cache_limit is None:
        return f"# no cache limit recommended: {why_not}"
    if cache_limit >= UNLIMITED:
        return "mx.set_cache_limit(2**63 - 1)  # unlimited"
    return f"mx.set_cache_limit({cache_limit})  # {limit_text(cache_limit)}"


def swift_code(cache_limit: int | None, why_not: str = "") -> str:
    """The line that applies a cache limit in an app using MLX Swift."""
    if cache_limit is None:
        return f"// no cache limit recommended: {why_not}"
    if cache_limit >= UNLIMITED:
        return "MLX.Memory.cacheLimit = Int.max  // unlimited"
    return f"MLX.Memory.cacheLimit = {cache_limit:_}  // {limit_text(cache_limit)}"


def reason(decision: Decision, unit: str) -> str:
    """The recommendation in plain sentences: what was chosen, against what, and how sure it is."""
    from mlxtune.decision import NO_RUNS, OVER_BUDGET, UNDECIDED, least_runs

    points, params, tol = decision.points, decision.params, f"{decision.tolerance:.0%}"
    measured = points[points["verdict"] != NO_RUNS]
    if measured.empty:
        return "No recommendation: no run succeeded."
    fits = measured[measured["verdict"] != OVER_BUDGET]
    if fits.empty:
        smallest = measured.loc[measured["footprint"].idxmin()]
        return (f"Nothing fits the budget of {format_size(decision.budget)}: the smallest footprint measured "
                f"is {format_size(int(smallest['footprint']))} ({point_text(smallest, params)}).")
    if not decision.compared:  # say so, not "the fastest"
        limit = limit_text(measured["cache_limit"].iloc[0])
        return _notes(f"Only one cache limit was measured ({limit}), so there is nothing to compare: sweep "
                      "two or more to get a recommendation.", decision)
    fewest = int(fits["runs"].min())
    if decision.best is None:
        runs, _ = _words(decision)
        least = least_runs(decision.paired, decision.confidence)
        text = (f"Not enough {runs} to decide: each point needs at least {least} successful {runs} "
                f"(the fewest here is {fewest}); sweep with more repeats, or until decided (repeats auto).")
        return _notes(text, decision)
    best = points.loc[decision.best]
    against = f"{point_text(best, params)} at {_speed(best['speed'], unit)}"
    if decision.choice is None:
        text = (f"Undecided: no point is shown within {tol} of the fastest ({against}) yet. "
                + _more(decision.points[decision.points["verdict"] == UNDECIDED], decision))
        return _notes(text, decision)
    chosen = points.loc[decision.choice]
    what = point_text(chosen, params)
    figures = f"{_speed(chosen['speed'], unit)}, footprint {format_size(int(chosen['footprint']))}"
    smaller = fits[fits["cache_limit"] < chosen["cache_limit"]]
    if decision.all_fast:
        subject = "the cache limit does" if len(params) == 1 else "these settings do"
        text = (f"All {len(fits)} points are shown within {tol} of the fastest, so {subject} not measurably "
                f"change throughput here; the smallest, {what}, is recommended ({figures}).")
    elif decision.choice == decision.best:
        text = f"{what[0].upper()}{what[1:]} is the fastest ({figures})"
        text += _below(smaller, tol) if len(smaller) else " and the smallest limit measured."
    else:
        text = (f"{what[0].upper()}{what[1:]} gives {figures}: shown within {tol} of the fastest ({against}; "
                f"at least {chosen['pick_low']:.0%} of it with {decision.pick_confidence:.0%} confidence)")
        text += _below(smaller, tol) if len(smaller) else "."
    if not decision.decided:
        still = decision.undecided
        text = (f"Undecided below {limit_text(chosen['cache_limit'])}: {what} is shown within {tol} of the "
                f"fastest and safe to use, but {_limits(still)} cannot be told yet. "
                + _more(still, decision))
    return _notes(text + _edge(smaller, decision), decision)


def _below(smaller: pd.DataFrame, tol: str) -> str:
    """What the limits below a decided choice were shown to be."""
    from mlxtune.decision import SLOW

    if smaller["verdict"].eq(SLOW).all():
        return f"; every smaller limit is shown more than {tol} slower."
    return "; no smaller limit is shown within it."


def _edge(smaller: pd.DataFrame, decision: Decision) -> str:
    """Why points at the edge of the tolerance (below the choice) leave the answer decided."""
    from mlxtune.decision import EDGE, edge

    pinned = smaller[smaller["verdict"] == EDGE]
    if pinned.empty:
        return ""
    figures = ", ".join(f"{limit_text(row['cache_limit'])} at {row['ratio']:.3f}x "
                        f"[{row['ratio_low']:.3f}, {row['ratio_high']:.3f}]" for _, row in pinned.iterrows())
    they = "it is" if len(pinned) == 1 else "they are"
    return (f" At the edge of the {decision.tolerance:.0%} tolerance: {figures} of the fastest, pinned "
            f"within {edge(decision.tolerance):.1%} of it either way. Which side cannot be told in a "
            f"time worth waiting, so {they} not picked and the answer stands.")


def _words(decision: Decision) -> tuple[str, str]:
    """What the decision's rows and rounds are called: blocks and cycles when paired, else runs and rounds."""
    return ("blocks", "cycles") if decision.paired else ("runs", "rounds")


def _more(open_points: pd.DataFrame, decision: Decision) -> str:
    """How many more rounds (cycles) would likely decide the open points."""
    runs, rounds = _words(decision)
    if len(open_points) and open_points["more_rounds"].isna().all():
        return f"They have too few successful {runs} to judge yet: measure more {rounds}."
    more = float(open_points["more_rounds"].max()) if len(open_points) else math.inf
    if not math.isfinite(more):
        return (f"Some sit so close to the tolerance that more {runs} are unlikely to settle them: accept a "
                "larger tolerance, or measure on a quieter machine.")
    more_rounds = count_text(int(more), f"more {rounds[:-1]}")  # rounds are whole numbers
    return f"About {more_rounds}{'' if decision.paired else ' of runs'} would likely decide."


def _notes(text: str, decision: Decision) -> str:
    """What else the reader should know: points over budget, more cache measured slower, noisy runs."""
    from mlxtune.decision import OVER_BUDGET

    points, params = decision.points, decision.params
    over = int((points["verdict"] == OVER_BUDGET).sum())
    if over:
        text += f" {over} of {len(points)} points exceed the budget of {format_size(decision.budget)}."
    for smaller, larger, ratio, _ in decision.violations[:2]:
        slower, than = point_text(points.loc[larger], params), limit_text(points.loc[smaller, "cache_limit"])
        text += (f" More cache was slower here: {slower} ran at {ratio:.2f}x the speed of {than} (memory "
                 "pressure can do this), so those limits were not pooled.")
    words = noise_text(decision.noise, decision.paired)
    return f"{text} {words}" if words else text


def noise_text(noise: Noise, paired: bool = False) -> str:
    """One or two sentences when the runs (blocks) were unsteady; "" when they were steady."""
    if paired:  # what moves a whole cycle cancels in its ratios: say so, not "the machine was busy"
        if noise.states is None and not noise.spread_wide:
            return ""
        return (f"Blocks at the same limit differ by up to {noise.spread:.1f}x (the machine's speed moved); "
                "each limit is compared with the fastest inside the same cycles, so what moves a whole "
                "cycle cancels.")
    parts = []
    if noise.states is not None:
        parts.append(f"Runs fell into two speed states about {noise.states:.2f}x apart (a state lasts a "
                     "whole run): the machine was busy or changed clocks.")
    elif noise.spread_wide:
        parts.append(f"Runs at the same limit differ by up to {noise.spread:.1f}x: the machine was busy.")
    if noise.drifted:
        way = "down" if noise.drift < 0 else "up"
        parts.append(f"Throughput drifted {way} by about {abs(noise.drift):.0%} from the first run to the "
                     "last (heat, or other work); interleaved rounds keep this from favouring any limit.")
    return " ".join(parts)


def headline(decision: Decision, unit: str) -> str:
    """The recommendation in one sentence."""

    if decision.nothing_fits:
        return f"Nothing measured fits the budget of {format_size(decision.budget)}: no limit to recommend."
    if decision.choice is None:
        return "No cache limit can be recommended from these runs yet."
    if not decision.compared:
        return "One cache limit was measured: nothing was compared, so none is recommended."
    chosen = decision.points.loc[decision.choice]
    where = "".join(f", {name}={_plain(chosen[name])}" for name in decision.params if name != "cache_limit")
    limit, what = limit_text(chosen["cache_limit"]), (f"{_speed(chosen['speed'], unit)} with a footprint of "
                                                      f"{format_size(int(chosen['footprint']))}")
    if not decision.decided:  # safe, not yet the answer: no advice the data does not back
        return (f"Undecided: cache limit {limit}{where} is safe so far ({what}); smaller limits are not yet "
                "shown fast or slow.")
    text = f"Set the cache limit to {limit}{where}: {what}"
    return text + (" (the cache limit made no measurable difference)." if decision.all_fast else ".")


# -- tables: one display model for HTML, Markdown, the terminal and the notebook -----------------


_SIZE_COLUMNS = {"cache_limit", "memory_limit", "peak_memory_max", "cache_after_max", "footprint",
                 "process_rss_max"}


def number(value: Any) -> str:
    """A measured number for a table: 4 significant digits, thousands separated; "–" for missing."""
    if value is None:
        return "–"
    value = float(value)
    if not math.isfinite(value):
        return "–"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def param_text(name: str, value: Any) -> str:
    """A grid value as people read it: limits as :func:`mlxtune.view.limit_text`, sizes as sizes, the
    value itself otherwise."""
    if not isinstance(value, (int, float, np.integer, np.floating)):
        return str(value)
    if name in LIMIT_AXES:
        return limit_text(value)
    return format_size(value) if name in _SIZE_COLUMNS else str(value)


def ratio_text(ratio: float, low: float, high: float) -> str:
    """A speed relative to the best with its bounds: "0.96x [0.91, 1.00]"; "–" when unknown."""
    if not math.isfinite(ratio):
        return "–"
    return f"{ratio:.2f}x [{low:.2f}, {high:.2f}]"


def cell_text(column: str, value: Any) -> str:
    """One raw run value as text for a person: exact, but never a sentinel or an epoch."""
    if column in LIMIT_AXES and isinstance(value, (int, float, np.integer, np.floating)):
        text = limit_text(value)  # as typed ("16MB") where that is exact, else every byte
        return text if value >= UNLIMITED or parse_size(text) == value else f"{int(value)}"
    if column == "started_at" and isinstance(value, (int, float, np.floating)) and math.isfinite(value):
        return time_text(float(value))
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(value) else f"{value:.10g}"
    return str(value)


def time_text(epoch: float) -> str:
    """A moment as a report shows it: the ISO 8601 UTC time of the files (:func:`mlxtune.files.iso_time`)."""
    return iso_time(epoch)


# -- fleets: one answer for several hosts ---------------------------------------------------------


def fleet_reason(choice: FleetChoice, decisions: Mapping[str, Decision], failures: Mapping[str, str],
                 tolerance: float) -> str:
    """The fleet's answer in sentences: the limit every host shows fast, or which host keeps it open."""
    tol, hosts = f"{tolerance:.0%}", len({*decisions, *choice.missing})
    if choice.missing:
        why = "; ".join(f"{h}: {_no_answer(decisions.get(h), failures.get(h))}" for h in choice.missing)
        return (f"No cache limit for the whole fleet: {len(choice.missing)} of {hosts} hosts have nothing "
                f"to decide on ({why}). Each measured host's own answer is below.")
    if choice.verdicts.empty:
        return "No cache limit for the whole fleet: no grid point was measured on every host."
    budgets = any(d.budget is not None for d in decisions.values())
    within = ", each within its memory budget" if budgets else ""
    if choice.point is None:
        own = "; ".join(f"{host}: {_own_answer(d)}" for host, d in decisions.items())
        return (f"No cache limit is shown within {tol} of the fastest on every host{within} yet ({own}). "
                "Sweep longer (repeats auto: until decided) or accept a larger tolerance.")
    what = point_text(choice.point, list(choice.point))
    text = (f"{what[0].upper()}{what[1:]} is the smallest setting shown within {tol} of the fastest on all "
            f"{hosts} hosts{within}.")
    if not choice.decided:
        limits = ", ".join(map(limit_text, choice.open_limits))
        text += f" Smaller limits ({limits}) are still undecided on some host: more runs could lower it."
    return text


def _no_answer(decision: Decision | None, failure: str | None) -> str:
    """Why a host gives the fleet nothing to decide on."""
    if decision is None or failure:  # a host lost mid-sweep: why, before what its few runs show
        return failure or "no result"
    if decision.nothing_fits:
        return f"nothing measured fits its budget of {format_size(decision.budget)}"
    return "too few successful runs"


def _own_answer(decision: Decision) -> str:
    if decision.choice is None:
        return "undecided"
    return limit_text(decision.points.loc[decision.choice, "cache_limit"])


# -- comparisons ------------------------------------------------------------------------------

#: How each difference between two compared results is named, and a note where one helps.
_DIFFERENCES = {
    "workload": ("the workloads differ", ""),
    "design": ("the designs differ", " (blocks inside runs against whole runs)"),
    "backend": ("the backend differs", ""),
    "device_name": ("the device differs", ""),
    "mlx": ("the MLX version differs", ""),
}


def difference_text(difference: Difference) -> str:
    """"the workloads differ: A / B", with the host first for fleets."""
    name, note = _DIFFERENCES[difference.what]
    a, b = (value or "not described" for value in (difference.a, difference.b))
    text = f"{name}: {a} / {b}{note}"
    return f"{difference.host}: {text}" if difference.host else text


def gate_finding_text(finding: GateFinding, metric: str) -> str:
    """Where a gate was crossed and by how much: "cache limit 0: +20.0% (100MB -> 120MB)"."""
    where = point_text(finding.point, list(finding.point))
    if finding.lost:
        return f"{finding.point['host']}: not measured in the new result ({finding.lost})"
    if finding.failed is not None:
        failed_b, runs_b, failed_a, runs_a = finding.failed
        return (f"{where}: {failed_b} of {runs_b} runs failed in the new result "
                f"({failed_a} of {runs_a} in the baseline)")
    if metric == "throughput":
        values = f"{finding.a:.4g} -> {finding.b:.4g}/s"
    else:
        values = f"{format_size(int(finding.a))} -> {format_size(int(finding.b))}"
    return f"{where}: {finding.change:+.1%} ({values})"


def gate_result_text(result: GateResult) -> str:
    """A checked gate for the terminal: PASS or FAIL, then where it failed or was crossed within noise."""
    metric = result.gate.metric
    lines = [f"{'PASS' if result.passed else 'FAIL'} {result.gate}"]
    lines += [f"  failed at {gate_finding_text(found, metric)}" for found in result.failures]
    lines += [f"  crossed but within noise at {gate_finding_text(found, metric)}"
              for found in result.within_noise]
    return "\n".join(lines)
