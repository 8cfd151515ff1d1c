"""Sizes: every accepted form, every rejected form, and round trips tried by hypothesis."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mlxtune.units import ACCEPTED_FORMS, UNLIMITED, format_size, parse_size

DECIMAL = {"": 1, "B": 1, "k": 1000, "K": 1000, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4}
BINARY = {"KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4}
UNITS = {**DECIMAL, **BINARY}

settings.register_profile("mlxtune", max_examples=300, deadline=None)
settings.load_profile("mlxtune")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20MB", 20_000_000),
        ("1.5GiB", 1610612736),
        ("512", 512),
        ("0", 0),
        ("2k", 2000),
        ("3K", 3000),
        ("64MiB", 64 * 1024**2),
        (" 7 kib ", 7 * 1024),
        ("1TB", 10**12),
        (".5KB", 500),
        ("1.0", 1),
        (1048576, 1048576),
        (4096.0, 4096),
        ("unlimited", UNLIMITED),
        ("None", UNLIMITED),
        ("inf", UNLIMITED),
        (math.inf, UNLIMITED),
        (2**80, UNLIMITED),
        ("9" * 40 + "TB", UNLIMITED),
    ],
)
def test_accepted_forms(text: str | int | float, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "bad",
    ["banana", "-3MB", "12 parsecs", "", "   ", "MB", "1.5", "1e6", "1,000", "--1", "٣MB", "1.2.3KB",
     "nan", -1, -0.5, 1.5, math.nan, -math.inf, True, None, b"20MB", [20], object()],
)
def test_rejected_forms_name_the_text_and_the_accepted_forms(bad: object) -> None:
    with pytest.raises(ValueError) as info:
        parse_size(bad)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    assert ACCEPTED_FORMS in message
    assert repr(bad)[:20] in message


def test_a_very_long_bad_text_gives_a_short_message() -> None:
    with pytest.raises(ValueError) as info:
        parse_size("<script>" * 10_000)
    assert len(str(info.value)) < len(ACCEPTED_FORMS) + 100


@given(st.integers(min_value=0, max_value=UNLIMITED))
def test_whole_numbers_round_trip_exactly(n: int) -> None:
    assert parse_size(str(n)) == n
    assert parse_size(n) == n


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(sorted(UNITS)))
def test_every_unit_multiplies(k: int, unit: str) -> None:
    assert parse_size(f"{k}{unit}") == min(k * UNITS[unit], UNLIMITED)
    assert parse_size(f"{k} {unit.lower()}") == min(k * UNITS[unit], UNLIMITED)


@given(st.integers(min_value=0, max_value=999), st.integers(min_value=0, max_value=999),
       st.sampled_from(sorted(set(UNITS) - {"", "B"})))
def test_decimals_are_exact(whole: int, millis: int, unit: str) -> None:
    expected = round(Fraction(whole * 1000 + millis, 1000) * UNITS[unit])
    assert parse_size(f"{whole}.{millis:03d}{unit}") == expected


@given(st.integers(min_value=0, max_value=UNLIMITED - 1))
@example(999)
@example(1000)
@example(999_500)
@example(UNLIMITED - 1)
def test_format_then_parse_is_within_half_a_percent(n: int) -> None:
    text = format_size(n)
    assert len(text) <= 10
    back = parse_size(text)
    assert abs(back - n) <= 0.005 * n
    if n < 1000:
        assert back == n


@given(st.integers(min_value=1, max_value=999), st.sampled_from([1, 1000, 1000**2, 1000**3, 1000**4]))
def test_round_numbers_format_exactly(k: int, scale: int) -> None:
    assert parse_size(format_size(k * scale)) == k * scale


def test_no_limit_formats_as_unlimited_and_back() -> None:
    assert format_size(UNLIMITED) == "unlimited"
    assert parse_size(format_size(UNLIMITED)) == UNLIMITED
    assert format_size(None) == "n/a"
    assert format_size(-2_000_000) == "-2MB"


@given(st.one_of(st.text(), st.text(alphabet="0123456789.kKmMgGtTiIbB -+e,_ \t\n", max_size=40)))
def test_any_text_parses_or_raises_value_error_only(text: str) -> None:
    try:
        size = parse_size(text)
    except ValueError as exc:
        assert ACCEPTED_FORMS in str(exc)
    else:
        assert 0 <= size <= UNLIMITED


OTHER_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=-1),
    st.binary(),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)


@given(OTHER_VALUES)
def test_any_other_value_parses_or_raises_value_error_only(value: object) -> None:
    try:
        size = parse_size(value)  # type: ignore[arg-type]
    except ValueError:
        return
    assert isinstance(size, int) and 0 <= size <= UNLIMITED
