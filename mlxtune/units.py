"""Byte sizes as people write them ("20MB", "1.5GiB", "unlimited") and back.

One parser serves every front end (magic options, CLI flags, widget labels), so a size means the
same thing everywhere. Decimal suffixes are powers of 1000, binary ones (KiB...) powers of 1024.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from fractions import Fraction

__all__ = [
    "ACCEPTED_FORMS", "BINARY_UNITS", "UNLIMITED", "format_size", "limit_text", "parse_size", "parse_sizes",
]

#: "No limit": the largest value MLX's limit setters accept, so MLX never trims for it.
UNLIMITED: int = 2**63 - 1

ACCEPTED_FORMS = (
    "a whole number of bytes (e.g. 1048576), a number with a unit "
    "k/K/KB/MB/GB/TB (powers of 1000) or KiB/MiB/GiB/TiB (powers of 1024) such as 20MB or 1.5GiB, "
    "or unlimited/none/inf"
)

_MULTIPLIERS: dict[str, int] = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_NO_LIMIT_WORDS = frozenset({"unlimited", "none", "inf", "infinity"})
_SIZE_RE = re.compile(r"(?P<whole>[0-9]*)(?:\.(?P<frac>[0-9]*))?\s*(?P<unit>[A-Za-z]*)", re.ASCII)
#: An integer part this long is beyond UNLIMITED whatever the unit, so it means "no limit".
_MAX_DIGITS = len(str(UNLIMITED))
#: Decimal places kept: later ones are far below a byte for any accepted unit.
_MAX_DECIMALS = 18


def parse_size(value: str | int | float) -> int:
    """Return ``value`` as a byte count; ``UNLIMITED`` for unlimited/none/inf and for any size
    beyond it. Raises ValueError naming the bad text and the accepted forms, and nothing else.

    Decimals are exact ("1.5GiB" is 1610612736); a fraction of a byte is rounded when a unit is
    given and rejected for a plain byte count.
    """
    if isinstance(value, bool):
        raise _size_error(value)
    if isinstance(value, int):
        if value < 0:
            raise _size_error(value)
        return min(value, UNLIMITED)
    if isinstance(value, float):
        if math.isinf(value) and value > 0:
            return UNLIMITED
        if math.isnan(value) or value < 0 or not value.is_integer():
            raise _size_error(value)
        return min(int(value), UNLIMITED)
    if not isinstance(value, str):
        raise _size_error(value)
    text = value.strip()
    if text.lower() in _NO_LIMIT_WORDS:
        return UNLIMITED
    match = _SIZE_RE.fullmatch(text)
    if match is None or not (match["whole"] or match["frac"]):
        raise _size_error(value)
    unit = match["unit"].lower()
    if unit not in _MULTIPLIERS:
        raise _size_error(value)
    whole = match["whole"].lstrip("0")
    if len(whole) > _MAX_DIGITS:
        return UNLIMITED
    decimals = (match["frac"] or "")[:_MAX_DECIMALS]
    number = int(whole or "0") + (Fraction(int(decimals), 10 ** len(decimals)) if decimals else 0)
    size = number * _MULTIPLIERS[unit]
    if unit in ("", "b") and Fraction(size).denominator != 1:
        raise _size_error(value)
    return min(round(size), UNLIMITED)


def parse_sizes(values: object, name: str = "cache_limits") -> list[int]:
    """A list of distinct sizes, in the order given, from what a user passes for ``name``.

    Accepts one size (``"16MB"``, ``0``), a comma-separated string (``"0,1MB,unlimited"``) or an
    iterable of sizes. Bytes, mappings and empty lists are refused: ``b"1MB"`` would otherwise be
    read as the numbers 49, 77, 66. Raises one ValueError naming ``name`` and the bad value.
    """
    if isinstance(values, (bytes, bytearray, memoryview, Mapping)):
        raise ValueError(f"{name} must be sizes such as ['0', '16MB', 'unlimited'] or '0,16MB', "
                         f"not {type(values).__name__}")
    if isinstance(values, str):
        values = [v for v in values.split(",") if v.strip()]
    elif isinstance(values, (int, float)) or not isinstance(values, Iterable):
        values = [values]
    sizes: list[int] = []
    for value in values:
        try:
            size = parse_size(value)  # type: ignore[arg-type]
        except ValueError:
            raise ValueError(f"{name}: {_size_error(value)}") from None
        if size not in sizes:
            sizes.append(size)
    if not sizes:
        raise ValueError(f"{name} is empty: give at least one size, e.g. [0, '16MB', 'unlimited']")
    return sizes


def _size_error(value: object) -> ValueError:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return ValueError(f"invalid size {shown}: expected {ACCEPTED_FORMS}")


_DECIMAL = (("KB", 1000), ("MB", 1000**2), ("GB", 1000**3), ("TB", 1000**4))
#: The binary units, smallest first: what measured sizes and the figures' size axes are written in.
BINARY_UNITS = (("KiB", 1024), ("MiB", 1024**2), ("GiB", 1024**3), ("TiB", 1024**4))


def format_size(n: int | float | None) -> str:
    """A short human form of a byte count that reads back as the same size where it can.

    A size that three significant digits of a decimal or binary unit give exactly reads as the user
    would have typed it: ``16MB`` for 16_000_000, ``3.5MB``, ``4MiB`` for 4 * 1024**2 (MLX's default
    cache limit on a small machine reads ``32MiB``, not ``33.6MB``). Any other size, such as a
    measured peak, reads in binary units with three significant digits (``64.2MiB``), the units
    operating systems and Xcode use for memory. ``parse_size(format_size(n))`` is exact for the
    first kind and within 0.5% of ``n`` for the second; below 1000 bytes it is exact (``512B``).
    """
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "n/a"
    if n >= UNLIMITED or (isinstance(n, float) and math.isinf(n)):
        return "unlimited"
    sign = "-" if n < 0 else ""
    magnitude = abs(n)
    if magnitude < 1000:
        return f"{sign}{int(magnitude)}B"
    for suffix, scale in (*reversed(_DECIMAL), *reversed(BINARY_UNITS)):  # as typed: exact in few digits
        text = _three_digits(magnitude / scale)
        if 1 <= float(text) < 1000 and parse_size(text + suffix) == magnitude:
            return f"{sign}{text}{suffix}"
    for index, (suffix, scale) in enumerate(BINARY_UNITS):
        text = _three_digits(magnitude / scale)
        if float(text) < 1000 or index == len(BINARY_UNITS) - 1:
            return f"{sign}{text}{suffix}"
    raise AssertionError("unreachable")


def _three_digits(x: float) -> str:
    """``x`` rounded to three significant digits, without an exponent or trailing zeros."""
    decimals = 2 if x < 10 else 1 if x < 100 else 0
    text = f"{x:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def limit_text(value: int | float) -> str:
    """A limit as people read it everywhere (tables, plots, the progress bar): "0", "16MB", "unlimited"."""
    return "0" if value == 0 else format_size(value)
