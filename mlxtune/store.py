"""Results as files: JSON that loads back (with a schema version), and CSV of the runs.

Writes go through :mod:`mlxtune.files` (atomic; special files never replaced). Loading reads JSON
only, never code, and checks it, so a truncated, foreign or newer file gives one ValueError naming
the file. :func:`read` returns the fields of the saved result; ``mlxtune.load`` builds the
:class:`~mlxtune.result.SweepResult` from them. A fleet file (:func:`write_fleet_json`) holds one
such document per host.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from mlxtune.files import iso_time, write_atomic
from mlxtune.record import (
    MEASURED_COLUMNS,
    SAMPLED_COLUMNS,
    SCHEMA_VERSION,
    TIMELINE_COLUMNS,
    fill_unsampled,
    runs_frame,
    timelines_frame,
)


class Saved(Protocol):
    """What this module reads of a result it writes: a :class:`~mlxtune.result.SweepResult` (results
    import this module, not the other way round)."""

    runs: pd.DataFrame
    blocks: pd.DataFrame
    timelines: pd.DataFrame
    params: list[str]
    label: str
    workload: str
    unit: str
    complete: bool
    planned_runs: int
    stop_reason: str
    options: dict[str, Any]
    environment: dict[str, Any]

    def summary_frame(self) -> pd.DataFrame: ...

    def recommend(self) -> Any: ...


class SavedFleet(Protocol):
    """What this module reads of a :class:`~mlxtune.fleet_result.FleetResult` it writes."""

    results: Mapping[str, Saved]
    failures: Mapping[str, str]
    label: str
    complete: bool
    stop_reason: str

__all__ = [
    "FILE_FORMAT", "FLEET_FORMAT", "fields_from_document", "fleet_from_document", "from_document",
    "is_fleet_document", "read", "read_document", "read_fleet", "to_document", "write_csv",
    "write_fleet_csv", "write_fleet_json", "write_json",
]


#: The marker every results file carries, beside its ``schema_version``.
FILE_FORMAT = "mlxtune.sweep"
#: The marker of a fleet results file: one results document per host.
FLEET_FORMAT = "mlxtune.fleet"


def to_document(result: Saved, derived: bool = True) -> dict[str, Any]:
    """The JSON-ready form of a result: metadata, column dtypes, raw runs and the summary.

    Options, environment and run values that JSON cannot hold are saved as their ``repr``, so
    whatever was measured can be saved. The summary and recommendation are derived (``load``
    recomputes them): if they cannot be computed, or ``derived`` is False (a result sent between
    processes), the document holds null there rather than losing the runs.
    """
    runs = result.runs
    summary: list[dict[str, Any]] | None = None
    if derived:
        with contextlib.suppress(Exception):  # the raw runs matter more than a derived table
            summary = _records(result.summary_frame())
    return {
        "format": FILE_FORMAT,
        "schema_version": SCHEMA_VERSION,
        "label": result.label,
        "workload": result.workload,
        "unit": result.unit,
        "complete": bool(result.complete),
        "planned_runs": int(result.planned_runs),
        "stop_reason": result.stop_reason,
        "params": list(result.params),
        "options": _jsonable(result.options),
        "environment": _jsonable(result.environment),
        "columns": _columns(runs),
        "runs": _records(runs),
        "summary": summary,
        "recommendation": _recommendation_document(result) if derived else None,
        "timelines": {name: result.timelines[name].tolist() for name in TIMELINE_COLUMNS},
        "block_columns": _columns(result.blocks),
        "blocks": _records(result.blocks),
    }


def _columns(frame: pd.DataFrame) -> list[list[str]]:
    """A frame's columns as saved: [name, dtype] pairs."""
    return [[str(name), _saved_dtype(frame[name])] for name in frame.columns]


def _recommendation_document(result: Saved) -> dict[str, Any] | None:
    """The recommendation at the default tolerance and no budget, with its interval and state (derived:
    ``load`` does not read it back); null when it cannot be computed."""
    try:
        return _jsonable(result.recommend().to_dict())
    except Exception:  # the raw runs matter more than a derived answer
        return None


def write_json(result: Saved, path: str | os.PathLike[str]) -> str:
    """Save raw runs, summary, environment and options with a schema version; :func:`load` reads it."""
    return _write_document(to_document(result), path)


def _write_document(document: dict[str, Any], path: str | os.PathLike[str]) -> str:
    """A results document as strict JSON (no NaN), written atomically."""
    text = json.dumps(document, indent=1, allow_nan=False, ensure_ascii=False)
    return write_atomic(path, text + "\n")


def read(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The fields of the :class:`~mlxtune.result.SweepResult` saved at ``path`` by :func:`write_json`.

    Only JSON is parsed, never code. A file that is not UTF-8 JSON, not an mlxtune results file,
    from a newer mlxtune, or inconsistent inside raises one ValueError naming the file and the
    problem. A missing file raises FileNotFoundError.
    """
    document = read_document(path)
    if is_fleet_document(document):
        raise ValueError(f"{os.fspath(path)}: a fleet result (one sweep per host): load it with mlxtune.load "
                         "or FleetResult.load")
    return from_document(document, os.fspath(path))


def read_document(path: str | os.PathLike[str]) -> Any:
    """The parsed JSON at ``path``; a ValueError names the file when it is not UTF-8 JSON."""
    name = os.fspath(path)
    raw = Path(name).read_bytes()
    try:
        document = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{name}: not an mlxtune results file: not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{name}: not an mlxtune results file: not valid JSON ({exc.msg} at line {exc.lineno} column "
            f"{exc.colno}); is it truncated, or another kind of file?"
        ) from None
    except RecursionError:
        raise ValueError(f"{name}: not an mlxtune results file: JSON nested too deeply") from None
    return document


def is_fleet_document(document: Any) -> bool:
    return isinstance(document, dict) and document.get("format") == FLEET_FORMAT


def write_fleet_json(fleet: SavedFleet, path: str | os.PathLike[str]) -> str:
    """Save a fleet result: each host's document (:func:`to_document`), the failures, the metadata."""
    document = {
        "format": FLEET_FORMAT,
        "schema_version": SCHEMA_VERSION,
        "label": fleet.label,
        "complete": bool(fleet.complete),
        "stop_reason": fleet.stop_reason,
        "failures": dict(fleet.failures),
        "hosts": {host: to_document(result) for host, result in fleet.results.items()},
    }
    return _write_document(document, path)


def read_fleet(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The fields of the :class:`~mlxtune.fleet_result.FleetResult` saved at ``path``."""
    name = os.fspath(path)
    return fleet_from_document(read_document(path), name)


def fleet_from_document(document: Any, name: str) -> dict[str, Any]:
    """Check a parsed fleet document; the keyword arguments of its FleetResult, each host's result as
    the fields :func:`from_document` gives (a ValueError names ``name``)."""
    if not is_fleet_document(document):
        raise ValueError(f'{name}: not an mlxtune fleet file (expected a JSON object with "format": '
                         f'"{FLEET_FORMAT}")')
    hosts, failures = document.get("hosts"), document.get("failures", {})
    if not isinstance(hosts, dict) or not isinstance(failures, dict) or not all(
            isinstance(v, str) for v in failures.values()):
        raise ValueError(f"{name}: field 'hosts' must map host names to results and 'failures' host names "
                         "to text")
    return dict(
        results={str(host): from_document(doc, f"{name}: host {host!r}") for host, doc in hosts.items()},
        failures={str(k): v for k, v in failures.items()},
        label=str(document.get("label", "fleet")),
        complete=bool(document.get("complete", True)),
        stop_reason=str(document.get("stop_reason", "")),
    )


def from_document(document: Any, source: str) -> dict[str, Any]:
    """The fields of the result in a parsed document (:func:`to_document`); a ValueError names ``source``."""
    try:
        return fields_from_document(document)
    except _FileProblem as exc:
        raise ValueError(f"{source}: {exc}") from None


class _FileProblem(Exception):
    """What is wrong with a results document; :func:`read` adds the file name."""


def fields_from_document(document: Any) -> dict[str, Any]:
    """Check a parsed results document; the keyword arguments of the result it holds (see :func:`read`)."""
    if not isinstance(document, dict) or document.get("format") != FILE_FORMAT:
        raise _FileProblem(
            f'not an mlxtune results file (expected a JSON object with "format": "{FILE_FORMAT}")'
        )
    version = document.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _FileProblem(f"invalid schema_version {_short(version)}: expected a whole number from 1")
    if version > SCHEMA_VERSION:
        raise _FileProblem(
            f"written by a newer mlxtune (schema version {version}; this version reads up to "
            f"{SCHEMA_VERSION}): upgrade mlxtune to load it"
        )
    fields = {
        "label": str, "workload": str, "unit": str, "complete": bool, "planned_runs": int,
        "params": list, "options": dict, "environment": dict, "columns": list, "runs": list,
    }
    for key, kind in fields.items():
        value = document.get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise _FileProblem(f"field {key!r} is {_short(value)}, expected {_KIND_NAMES[kind]}")
    stop_reason = document.get("stop_reason", "")
    if not isinstance(stop_reason, str):
        raise _FileProblem(f"field 'stop_reason' is {_short(stop_reason)}, expected a string")
    _check_context(document["options"], document["environment"])
    runs = _runs_from(document["columns"], document["runs"], document["params"], version)
    blocks = _blocks_from(document, version)
    return dict(
        runs=runs,
        params=list(document["params"]),
        label=document["label"],
        workload=document["workload"],
        unit=document["unit"],
        complete=document["complete"],
        planned_runs=document["planned_runs"],
        stop_reason=stop_reason,
        environment=document["environment"],
        options=document["options"],
        schema_version=version,
        timelines=_timelines_from(document.get("timelines"), len(runs)),
        blocks=blocks,
    )


def _whole_bytes(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_context(options: dict[str, Any], environment: dict[str, Any]) -> None:
    """The options and environment fields that reports read as sizes or as text hold what they say."""
    limits = options.get("cache_limits")
    if limits is not None and not (isinstance(limits, list) and all(map(_whole_bytes, limits))):
        raise _FileProblem(f"field 'options.cache_limits' is {_short(limits)}, expected a list of whole "
                           "numbers of bytes")
    grid = options.get("grid")
    if grid is not None and not (isinstance(grid, dict) and all(isinstance(v, list) for v in grid.values())):
        raise _FileProblem(f"field 'options.grid' is {_short(grid)}, expected an object of lists")
    if grid and not all(map(_whole_bytes, grid.get("memory_limit", []))):
        raise _FileProblem(f"field 'options.grid.memory_limit' is {_short(grid['memory_limit'])}, expected "
                           "whole numbers of bytes")
    if options.get("budget") is not None and not _whole_bytes(options["budget"]):
        raise _FileProblem(f"field 'options.budget' is {_short(options['budget'])}, expected a whole number "
                           "of bytes or null")
    for key in ("command", "commit"):
        if environment.get(key) is not None and not isinstance(environment[key], str):
            raise _FileProblem(f"field 'environment.{key}' is {_short(environment[key])}, expected a string")


def _blocks_from(document: dict[str, Any], version: int) -> pd.DataFrame:
    """The paired design's blocks (schema version 3), checked as runs are; none in older files."""
    if "blocks" not in document and "block_columns" not in document:
        return runs_frame([])
    columns, rows = document.get("block_columns"), document.get("blocks")
    if not isinstance(columns, list) or not isinstance(rows, list):
        raise _FileProblem("fields 'block_columns' and 'blocks' must both be lists")
    if not rows:  # a sweep of whole runs
        return runs_frame([])
    try:
        return _runs_from(columns, rows, document["params"], version)
    except _FileProblem as exc:
        raise _FileProblem(f"in the blocks: {exc}") from None


#: Seconds since 1970 at the start of the year 3000: a run's start time is before it.
_YEAR_3000 = 32_503_680_000.0
_KIND_NAMES = {str: "a string", bool: "true or false", int: "a whole number", list: "a list",
               dict: "an object"}


_DTYPE_RE = re.compile(r"^(?:u?int(?:8|16|32|64)|float(?:16|32|64)|bool|str|string|object)$")


_TEXT = ("unit", "error", "error_detail")


_NUMERIC = tuple(name for name in MEASURED_COLUMNS if name not in _TEXT)


def _timelines_from(saved: Any, runs: int) -> pd.DataFrame:
    """The timelines saved with the runs (none before schema version 2), checked like the runs."""
    if saved is None:
        return timelines_frame([])
    if not isinstance(saved, dict) or set(saved) != set(TIMELINE_COLUMNS):
        names = ", ".join(TIMELINE_COLUMNS)
        raise _FileProblem(f"field 'timelines' must be an object with the lists {names}")
    lengths = {len(v) if isinstance(v, list) else -1 for v in saved.values()}
    if len(lengths) != 1 or -1 in lengths:
        raise _FileProblem("field 'timelines' must hold lists of one length")
    frame = pd.DataFrame({name: _column(f"timelines.{name}", "float64" if name == "seconds" else "int64",
                                        saved[name]) for name in TIMELINE_COLUMNS})
    if len(frame) and not frame["run"].between(0, runs - 1).all():
        raise _FileProblem("field 'timelines' names a run that is not in the file")
    return frame


def _runs_from(columns: list[Any], rows: list[Any], params: list[Any], version: int) -> pd.DataFrame:
    names: list[str] = []
    dtypes: list[str] = []
    for entry in columns:
        if (not isinstance(entry, list) or len(entry) != 2 or not all(isinstance(x, str) for x in entry)
                or not _DTYPE_RE.match(entry[1])):
            raise _FileProblem(f"bad column entry {_short(entry)}: expected [name, dtype] with a plain dtype")
        names.append(entry[0])
        dtypes.append(entry[1])
    if len(set(names)) != len(names):
        raise _FileProblem("a column is listed twice")
    if (not params or not all(isinstance(p, str) for p in params) or params[0] != "cache_limit"
            or len(set(params)) != len(params)):
        raise _FileProblem(f"bad params {_short(params)}: expected column names starting with cache_limit")
    sampled = () if version >= 2 else SAMPLED_COLUMNS  # older files: filled in from the snapshots
    later = () if version >= 4 else ("error_detail",)  # older files: the one line they kept
    required = [*params, *(name for name in MEASURED_COLUMNS if name not in (*sampled, *later))]
    missing = [name for name in required if name not in names]
    if missing:
        raise _FileProblem(f"the runs have no column {missing[0]!r}")
    known = set(names)
    for index, row in enumerate(rows):
        if not isinstance(row, dict) or not set(row) <= known:
            raise _FileProblem(f"run {index} is {_short(row)}, expected an object with the listed columns")
    data = {name: _column(name, dtype, [row.get(name) for row in rows])
            for name, dtype in zip(names, dtypes, strict=True)}
    frame = fill_unsampled(pd.DataFrame(data, columns=names))
    if "error_detail" not in frame:
        frame.insert(frame.columns.get_loc("error") + 1, "error_detail", frame["error"])
    for name in ("cache_limit", *_NUMERIC) if len(frame) else ():
        if not pd.api.types.is_numeric_dtype(frame[name]) or pd.api.types.is_bool_dtype(frame[name]):
            raise _FileProblem(f"column {name!r} must be numeric, not {frame[name].dtype}")
    for name in _TEXT:
        if not all(isinstance(v, str) for v in frame[name]):
            raise _FileProblem(f"column {name!r} must hold strings")
    limits = frame["cache_limit"].astype(float)
    bad = ~(limits.notna() & (limits >= 0) & (limits == limits.round()))
    if bad.any():
        index = int(bad.to_numpy().argmax())
        raise _FileProblem(f"run {index} has cache_limit {_short(rows[index].get('cache_limit'))}: every run "
                           "needs a whole number of bytes >= 0")
    for name in params[1:]:
        odd = next((v for v in frame[name] if v is not None and not isinstance(v, (str, int, float))), None)
        if odd is not None:
            raise _FileProblem(f"column {name!r} holds {_short(odd)}: a grid axis holds numbers, text, "
                               "true/false or null")
    started = frame["started_at"].astype(float) if len(frame) else frame["started_at"]
    late = ~(started.notna() & (started >= 0) & (started < _YEAR_3000))
    if late.any():
        index = int(late.to_numpy().argmax())
        raise _FileProblem(f"run {index} has started_at {_short(rows[index].get('started_at'))}: expected "
                           "seconds since 1970, before the year 3000")
    return frame


def _column(name: str, dtype: str, values: list[Any]) -> pd.Series:
    """One saved column back in its dtype; values that do not fit it are a file problem."""
    def fits(value: Any) -> bool:
        if dtype.startswith(("int", "uint")):
            return isinstance(value, int) and not isinstance(value, bool)
        if dtype.startswith("float"):
            return value is None or value in ("inf", "-inf") or (
                isinstance(value, (int, float)) and not isinstance(value, bool))
        if dtype == "bool":
            return isinstance(value, bool)
        if dtype in ("str", "string"):
            return value is None or isinstance(value, str)
        return value is None or isinstance(value, (str, int, float, bool))

    bad = next((v for v in values if not fits(v)), _NOTHING)
    if bad is not _NOTHING:
        raise _FileProblem(f"column {name!r} holds {_short(bad)}, which is not a {dtype} value")
    try:
        return pd.Series(values, dtype=object).astype(dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        raise _FileProblem(f"column {name!r} does not fit dtype {dtype}: {exc}") from None


_NOTHING = object()


def _short(value: Any) -> str:
    plain = isinstance(value, (str, int, float, bool, type(None)))
    text = json.dumps(value) if plain else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def _jsonable(value: Any) -> Any:
    """``value`` with numpy scalars unwrapped, NaN as null, infinities as "inf"/"-inf", the rest repr'd."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return repr(value)


def _saved_dtype(column: pd.Series) -> str:
    """The dtype a column is saved as: its own when :func:`load` accepts it, else object."""
    name = str(column.dtype)
    return name if _DTYPE_RE.match(name) else "object"


def _cell(value: Any) -> Any:
    """A frame cell as a JSON scalar (lists and other objects as their repr)."""
    value = _jsonable(value)
    return repr(value) if isinstance(value, (list, dict)) else value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    columns = [str(c) for c in frame.columns]
    return [{c: _cell(v) for c, v in zip(columns, row, strict=True)} for row in frame.itertuples(index=False)]


def write_csv(result: Saved, path: str | os.PathLike[str]) -> str:
    """The tidy runs, one row per run, each swept parameter its own column; first the sweep's
    ``label`` and the ``run``'s number (its row in the timelines), and ``started_at`` as an ISO time.

    A text cell that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``,
    a tab or a carriage return) is written with a leading ``'``, as OWASP advises; numbers are untouched.
    """
    return _write_rows(_csv_rows(result), path)


def write_fleet_csv(fleet: SavedFleet, path: str | os.PathLike[str]) -> str:
    """Every host's rows of :func:`write_csv` in one file, ``host`` first."""
    frames = [_csv_rows(result).assign(host=host) for host, result in fleet.results.items()]
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["host", "label", "run"])
    return _write_rows(rows[["host", *(c for c in rows.columns if c != "host")]], path)


def _csv_rows(result: Saved) -> pd.DataFrame:
    """The runs, then a paired sweep's blocks (``measured_as`` says which; a block's ``repeat`` is its
    cycle)."""
    runs = result.runs.copy()
    runs.insert(0, "run", range(len(runs)))
    if len(result.blocks):
        blocks = result.blocks.copy()
        blocks.insert(0, "run", range(len(blocks)))
        runs = pd.concat([runs.assign(measured_as="run"), blocks.assign(measured_as="block")],
                         ignore_index=True)
        runs.insert(0, "measured_as", runs.pop("measured_as"))
    runs.insert(0, "label", result.label)
    runs["started_at"] = [iso_time(t) if math.isfinite(t) else "" for t in runs["started_at"]]
    return runs


def _write_rows(rows: pd.DataFrame, path: str | os.PathLike[str]) -> str:
    """The rows as CSV where no cell and no header (a metric's or an axis's name) is a live formula."""
    for name in rows.columns:
        if not pd.api.types.is_numeric_dtype(rows[name]):
            rows[name] = rows[name].map(_inert_cell)
    rows = rows.rename(columns=_inert_cell)
    return write_atomic(path, rows.to_csv(index=False, lineterminator="\n"))


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _inert_cell(value: Any) -> Any:
    return f"'{value}" if isinstance(value, str) and value.startswith(_FORMULA_STARTS) else value
