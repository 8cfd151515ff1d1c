"""Words: the one place where numbers and states are put into text for people to read.

Every surface (the command line, the magic, the panel, reports) draws what this module writes, so a
limit, a point or a recommendation reads the same everywhere. Nothing here measures or decides:
the numbers come from :mod:`mlxtune.stats` and :mod:`mlxtune.decision`.
"""

from __future__ import annotations

import math
import sys
import unicodedata
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mlxtune.units import UNLIMITED, format_size

if TYPE_CHECKING:
    import pandas as pd

    from mlxtune.decision import Decision, Noise

__all__ = [
    "LIMIT_AXES",
    "PROCESS_MEMORY",
    "headline",
    "limit_text",
    "noise_text",
    "point_text",
    "python_code",
    "reason",
    "seconds_text",
    "swift_code",
    "terminal_text",
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


def seconds_text(seconds: float) -> str:
    """A short time: ``812 µs``, ``3.41 ms``, ``2.05 s``."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def limit_text(value: int | float) -> str:
    """A limit as people read it: "0", "16MB", "unlimited"."""
    return "0" if value == 0 else format_size(value)


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
    from mlxtune.decision import FAST, MIN_ROUNDS, NO_RUNS, OVER_BUDGET

    points, params, tol = decision.points, decision.params, f"{decision.tolerance:.0%}"
    measured = points[points["verdict"] != NO_RUNS]
    if measured.empty:
        return "No recommendation: no run succeeded."
    fits = measured[measured["verdict"] != OVER_BUDGET]
    if fits.empty:
        smallest = measured.loc[measured["footprint"].idxmin()]
        return (f"Nothing fits the budget of {format_size(decision.budget)}: the smallest footprint measured "
                f"is {format_size(int(smallest['footprint']))} ({point_text(smallest, params)}).")
    fewest = int(fits["runs"].min())
    if decision.best is None or fewest < MIN_ROUNDS:
        text = (f"Not enough runs to decide: each point needs at least {MIN_ROUNDS} successful runs "
                f"(the fewest here is {fewest}); sweep with more repeats, or repeats=\"auto\".")
        return _notes(text, decision)
    best = points.loc[decision.best]
    against = f"{point_text(best, params)} at {_speed(best['speed'], unit)}"
    if decision.choice is None:
        text = (f"Undecided: no point is shown within {tol} of the fastest ({against}) yet. "
                + _more(decision.points[decision.points["verdict"] == "undecided"]))
        return _notes(text, decision)
    chosen = points.loc[decision.choice]
    what = point_text(chosen, params)
    figures = f"{_speed(chosen['speed'], unit)}, footprint {format_size(int(chosen['footprint']))}"
    smaller = fits[fits["cache_limit"] < chosen["cache_limit"]]
    if decision.decided and len(fits) > 1 and (fits["verdict"] == FAST).all():
        subject = "the cache limit does" if len(params) == 1 else "these settings do"
        text = (f"All {len(fits)} points are shown within {tol} of the fastest, so {subject} not measurably "
                f"change throughput here; the smallest, {what}, is recommended ({figures}).")
    elif decision.choice == decision.best:
        text = f"{what[0].upper()}{what[1:]} is the fastest ({figures})"
        text += f"; every smaller limit is shown more than {tol} slower." if len(smaller) else (
            " and the smallest limit measured.")
    else:
        text = (f"{what[0].upper()}{what[1:]} gives {figures}: shown within {tol} of the fastest ({against}; "
                f"at least {chosen['ratio_low']:.0%} of it with {decision.confidence:.0%} confidence)")
        text += f"; every smaller limit is shown more than {tol} slower." if len(smaller) else "."
    if not decision.decided:
        still = decision.undecided
        text = (f"Undecided below {limit_text(chosen['cache_limit'])}: {what} is shown within {tol} of the "
                f"fastest and safe to use, but {_limits(still)} cannot be told yet. " + _more(still))
    return _notes(text, decision)


def _more(open_points: pd.DataFrame) -> str:
    """How many more rounds would likely decide the open points."""
    rounds = float(open_points["more_rounds"].max()) if len(open_points) else math.inf
    if not math.isfinite(rounds):
        return ("Some sit so close to the tolerance that more runs are unlikely to settle them: accept a "
                "larger tolerance, or measure on a quieter machine.")
    return f"About {rounds:.0f} more round{'s' if rounds != 1 else ''} of runs would likely decide."


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
    words = noise_text(decision.noise)
    return f"{text} {words}" if words else text


def noise_text(noise: Noise) -> str:
    """One or two sentences when the runs were unsteady; "" when they were steady."""
    parts = []
    if noise.states is not None:
        parts.append(f"Runs fell into two speed states about {noise.states:.2f}x apart (a state lasts a "
                     "whole run): the machine was busy or changed clocks.")
    elif noise.spread > 1.25:
        parts.append(f"Runs at the same limit differ by up to {noise.spread:.1f}x: the machine was busy.")
    if noise.drift_p < 0.01 and abs(noise.drift) > 0.05:
        way = "down" if noise.drift < 0 else "up"
        parts.append(f"Throughput drifted {way} by about {abs(noise.drift):.0%} from the first run to the "
                     "last (heat, or other work); interleaved rounds keep this from favouring any limit.")
    return " ".join(parts)


def headline(decision: Decision, unit: str) -> str:
    """The recommendation in one sentence."""
    if decision.choice is None:
        return "No cache limit can be recommended from these runs yet."
    chosen = decision.points.loc[decision.choice]
    where = "".join(f", {name}={_plain(chosen[name])}" for name in decision.params if name != "cache_limit")
    text = (f"Set the cache limit to {limit_text(chosen['cache_limit'])}{where}: "
            f"{_speed(chosen['speed'], unit)} with a footprint of {format_size(int(chosen['footprint']))}")
    if not decision.decided:
        return text + " (smaller limits are still undecided)."
    fits = decision.points[decision.points["verdict"].isin(["fast", "slow", "undecided"])]
    return text + (" (the cache limit made no measurable difference)." if len(fits) > 1
                   and (fits["verdict"] == "fast").all() else ".")
