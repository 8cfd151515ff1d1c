"""Byte sizes as people write them ("20MB", "1.5GiB", "unlimited") and back.

One parser serves every front end (magic options, CLI flags, widget labels), so a size means the
same thing everywhere. Decimal suffixes are powers of 1000, binary ones (KiB...) powers of 1024.
"""

from __future__ import annotations

import math
import re

__all__ = ["UNLIMITED", "ACCEPTED_FORMS", "parse_size", "format_size"]

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
_SIZE_RE = re.compile(r"^\s*(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[A-Za-z]*)\s*$")


def parse_size(value: str | int | float) -> int:
    """Return ``value`` as a byte count; ``UNLIMITED`` for unlimited/none/inf.

    Raises ValueError naming the bad text and the accepted forms.
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
    match = _SIZE_RE.match(text)
    if match is None:
        raise _size_error(value)
    unit = match["unit"].lower()
    if unit not in _MULTIPLIERS:
        raise _size_error(value)
    number = float(match["number"]) * _MULTIPLIERS[unit]
    if not number.is_integer() and unit in ("", "b"):
        raise _size_error(value)
    return min(int(round(number)), UNLIMITED)


def _size_error(value: object) -> ValueError:
    return ValueError(f"invalid size {value!r}: expected {ACCEPTED_FORMS}")


_SCALES = (("TB", 1000**4), ("GB", 1000**3), ("MB", 1000**2), ("KB", 1000))


def format_size(n: int | float | None) -> str:
    """A short human form of a byte count: ``20MB``, ``1.5GB``, ``512B``, ``unlimited``.

    Decimal units, up to three significant digits; ``parse_size(format_size(n))`` is within
    0.5% of ``n``, and exact for round numbers.
    """
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "n/a"
    if n >= UNLIMITED or (isinstance(n, float) and math.isinf(n)):
        return "unlimited"
    sign = "-" if n < 0 else ""
    magnitude = abs(n)
    for suffix, scale in _SCALES:
        if magnitude >= scale:
            return f"{sign}{_significant(magnitude / scale)}{suffix}"
    return f"{sign}{int(magnitude)}B"


def _significant(x: float) -> str:
    text = f"{x:.3g}" if x < 1000 else f"{x:.0f}"
    return text
