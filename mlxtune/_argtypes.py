"""argparse types shared by the ``mlxtune`` command and the magics (``magic_arguments`` is argparse).

A size, a list of cache limits or a count is read, and refused, with the same words in a shell and in
a cell: bad text becomes one line naming it and what is accepted. Nothing here imports IPython.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from mlxtune.runner import MAX_TIMEOUT
from mlxtune.units import parse_size, parse_sizes

__all__ = ["cache_limits", "fraction", "repeats", "seconds", "size", "whole_number"]


def size(text: str) -> int:
    """A size as :func:`mlxtune.units.parse_size` reads it (``20MB``, ``1.5GiB``, ``unlimited``)."""
    try:
        return parse_size(text)
    except ValueError as exc:  # its message names the text and the accepted forms
        raise argparse.ArgumentTypeError(str(exc)) from None


def cache_limits(text: str) -> list[int]:
    """Comma-separated sizes (``0,1MB,16MB,unlimited``), at least one, each once."""
    if not text.strip(", "):
        raise argparse.ArgumentTypeError("no cache limits given: e.g. 0,1MB,16MB,unlimited")
    try:
        return parse_sizes(text)
    except ValueError as exc:  # names the bad size and the accepted forms
        raise argparse.ArgumentTypeError(str(exc).removeprefix("cache_limits: ")) from None


def whole_number(minimum: int) -> Callable[[str], int]:
    """A type for a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, not {text!r}")
        return value

    return parse


def seconds(text: str) -> float:
    """A number of seconds > 0 and at most :data:`mlxtune.runner.MAX_TIMEOUT` (a day; not ``inf``)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= MAX_TIMEOUT:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0 and at most {MAX_TIMEOUT:g}, "
                                         f"not {text!r}")
    return value


def repeats(text: str) -> int | str:
    """Runs per point: a whole number >= 1, or ``auto`` (adaptive: until the answer is decided)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return whole_number(1)(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1 or auto, not {text!r}") from None


def fraction(text: str) -> float:
    """A fraction in [0, 1) such as 0.05, or a percentage such as 5%."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1) such as 0.05 or 5%, not {text!r}")
    return value
