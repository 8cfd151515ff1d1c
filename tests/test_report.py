"""Report files are read back: HTML parsed, Markdown tables split, CSV and JSON loaded again.

Also: hostile text stays text, writes are atomic, and the loader turns every bad file into one
ValueError naming it (property-tested with hypothesis).
"""

from __future__ import annotations

import base64
import dataclasses
import gc
import json
import os
import re
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bs4 import BeautifulSoup
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sweep_data import LIMITS, SPEEDS, make_result, row

import mlxtune
from mlxtune import files, report
from mlxtune.record import SCHEMA_VERSION, runs_frame
from mlxtune.result import SweepResult
from mlxtune.sweep import PlanError
from mlxtune.units import format_size
from mlxtune.view import limit_text

HOSTILE = '<script>alert(1)</script> "quoted" | piped\nsecond line'


def assert_same_result(loaded: SweepResult, saved: SweepResult) -> None:
    """Equal results: the runs frames equal (values and dtypes), every other field equal."""
    pd.testing.assert_frame_equal(loaded.runs, saved.runs)
    pd.testing.assert_frame_equal(loaded.timelines, saved.timelines)
    pd.testing.assert_frame_equal(loaded.blocks, saved.blocks)
    for field in dataclasses.fields(SweepResult):
        if field.name not in ("runs", "timelines", "blocks"):
            assert getattr(loaded, field.name) == getattr(saved, field.name), field.name
    assert loaded == saved


def soup_of(path: str | Path) -> BeautifulSoup:
    return BeautifulSoup(Path(path).read_text(encoding="utf-8"), "html.parser")


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Every pipe table in ``text`` as rows of cells (escaped pipes stay inside their cell)."""
    tables, current = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            current.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
        elif current:
            tables.append([r for r in current if not all(set(c) <= set(":-") for c in r)])
            current = []
    return tables


# -- HTML -------------------------------------------------------------------------------------


def test_html_report_is_one_self_contained_page_with_every_section(tmp_path):
    result = make_result()
    rec = result.recommend()
    path = result.to_html(str(tmp_path / "report.html"))
    assert path == str(tmp_path / "report.html")
    soup = soup_of(path)

    assert "tiny fp16" in soup.title.get_text() and "tiny fp16" in soup.h1.get_text()
    assert soup.find_all("script") == [] and soup.find_all("link") == []
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", str(soup))

    recommendation = soup.find(id="recommendation")
    assert f"Set the cache limit to {format_size(rec.cache_limit)}" in recommendation.get_text()
    codes = [c.get_text() for c in recommendation.find_all("code")]
    assert rec.python_code in codes[0] and "import mlx.core as mx" in codes[0]
    assert rec.swift_code in codes[1] and "MLX.Memory.cacheLimit" in codes[1]

    summary = soup.find("table", class_="summary")
    rows = summary.find("tbody").find_all("tr")
    assert [r.find("td").get_text().split(" ")[0] for r in rows] == [limit_text(v) for v in LIMITS]
    (recommended,) = summary.find_all("tr", class_="recommended")
    assert recommended.find("td").get_text().startswith(format_size(rec.cache_limit))
    assert "median tokens/s" in [th.get_text() for th in summary.find_all("th")]

    images = soup.find_all("img")
    kinds = [i["alt"].split(" ")[0] for i in images]
    assert kinds == ["tradeoff", "throughput", "memory", "order"]  # these runs have no timelines
    for image in images:
        assert image["src"].startswith("data:image/svg+xml;base64,")
        assert b"<svg" in base64.b64decode(image["src"].split(",", 1)[1])

    runs = soup.find("details").find("table", class_="runs")
    assert len(runs.find("tbody").find_all("tr")) == len(result.runs)
    cells = (tr.find_all(["th", "td"]) for tr in soup.find("table", class_="environment").find_all("tr"))
    environment = {th.get_text(): td.get_text() for th, td in cells}
    assert environment["MLX"] == "0.32.4" and environment["mlx-lm"] == "0.32.2"
    assert environment["device"] == "test cpu" and environment["backend"] == "cpu"
    assert environment["workload"].startswith("lm: tiny llama")
    assert {"mlxtune", "OS", "Python", "date", "device memory"} <= set(environment)


def test_html_png_figures_and_the_notebook_fragment(tmp_path):
    result = make_result()
    soup = soup_of(report.write_html(result, tmp_path / "r.html", image_format="png", figures=["tradeoff"]))
    (image,) = soup.find_all("img")
    assert base64.b64decode(image["src"].split(",", 1)[1]).startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="svg or png"):
        report.render_html(result, image_format="gif")

    fragment = BeautifulSoup(result._repr_html_(), "html.parser")
    assert len(fragment.find("table").find("tbody").find_all("tr")) == len(LIMITS)
    assert "Set the cache limit" in fragment.get_text()
    empty = SweepResult(runs=runs_frame([]), params=["cache_limit"], label=HOSTILE)
    assert "no runs yet" in empty._repr_html_() and "<script>" not in empty._repr_html_()


def hostile_result() -> SweepResult:
    error = f"ValueError: bad <b>{HOSTILE}</b>"
    rows = [row(limit, r, SPEEDS[limit], error=error if r == 0 and limit == 0 else "")
            for limit in LIMITS for r in range(3)]
    return SweepResult(
        runs=runs_frame(rows), params=["cache_limit"], label=HOSTILE, workload="<img src=x onerror=alert(1)>",
        environment={"device_name": "</td><script>alert(2)</script>", "note": "x" * 20_000},
        options={"cell": "%%mlxmem\n<iframe src='https://example.com'></iframe>"},
        complete=False, planned_runs=20, stop_reason="Stopped <b>by</b> the user.",
    )


def test_user_text_in_html_shows_as_text_never_as_markup(tmp_path):
    soup = soup_of(hostile_result().to_html(str(tmp_path / "hostile.html")))
    assert soup.find_all(["script", "iframe", "b"]) == []
    assert [img["src"].split(":")[0] for img in soup.find_all("img")] == ["data"] * 4
    text = soup.get_text()
    assert "<script>alert(1)</script>" in text and "<img src=x onerror=alert(1)>" in text
    assert "</td><script>alert(2)</script>" in text and "x" * 20_000 in text
    assert "incomplete: 15 of 20 planned runs, 1 failed (Stopped <b>by</b> the user)" in text
    assert "stopped early" in soup.find(class_="warning").get_text()


# -- Markdown ---------------------------------------------------------------------------------


def test_markdown_report_has_tables_and_figure_files_beside_it(tmp_path):
    result = make_result(extra={"dtype": ["fp16", "q4"]}, scale={"q4": 0.6})
    path = result.to_markdown(str(tmp_path / "sweep.md"))
    text = Path(path).read_text(encoding="utf-8")
    summary, environment, runs = markdown_tables(text)
    assert summary[0][:5] == ["cache limit", "dtype", "median tokens/s", "x best (95% bounds)", "verdict"]
    assert len(summary) == 1 + 2 * len(LIMITS)
    assert sum("★ recommended" in r[0] for r in summary) == 1
    assert ["MLX", "0.32.4"] in environment
    assert len(runs) == 1 + len(result.runs) and runs[0][:2] == ["cache\\_limit", "dtype"]
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert linked == ["sweep-tradeoff.png", "sweep-throughput.png", "sweep-memory.png", "sweep-order.png"]
    for name in linked:
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")
    assert "```python\nimport mlx.core as mx" in text and "```swift\nimport MLX" in text
    spaced = Path(result.to_markdown(str(tmp_path / "my [report].md"), figures=["tradeoff"])).read_text()
    assert "![tradeoff figure](my%20%5Breport%5D-tradeoff.png)" in spaced
    assert (tmp_path / "my [report]-tradeoff.png").exists()


def test_user_text_in_markdown_cannot_break_tables_or_inject_html(tmp_path):
    text = Path(hostile_result().to_markdown(str(tmp_path / "hostile.md"))).read_text(encoding="utf-8")
    assert "<script>" not in text and "<b>" not in text and "<img src=x" not in text
    assert text.startswith("# mlxtune report: &lt;script&gt;alert(1)&lt;/script&gt;")
    for table in markdown_tables(text):
        assert len({len(r) for r in table}) == 1  # every row has the header's number of cells
    runs = markdown_tables(text)[-1]
    error_cell = runs[1][runs[0].index("error")]
    assert "second line" in error_cell and "\\|" in error_cell
    assert report.markdown_text("a|b\nc`d") == "a\\|b c\\`d"
    assert report.code_block("x = '```'", "python").startswith("````python\n")
    mentioned = Path(make_result(label="ping @org/team").to_markdown(str(tmp_path / "m.md"))).read_text()
    assert "ping @\u2060org/team" in mentioned and "@org" not in mentioned  # reads as typed, mentions no one


# -- CSV and JSON -----------------------------------------------------------------------------


def test_csv_holds_the_tidy_runs_with_a_column_per_parameter(tmp_path):
    result = make_result(extra={"batch": [1, 4]})
    back = pd.read_csv(result.to_csv(str(tmp_path / "runs.csv")), keep_default_na=False)
    assert list(back.columns) == ["label", "run", *result.runs.columns]
    assert list(back.columns[:4]) == ["label", "run", "cache_limit", "batch"]
    assert (back["label"] == result.label).all() and back["run"].tolist() == list(range(len(result.runs)))
    assert pd.to_datetime(back["started_at"]).dt.tz is not None  # an ISO time, not an epoch
    assert back["cache_limit"].tolist() == result.runs["cache_limit"].tolist()
    assert back["batch"].tolist() == result.runs["batch"].tolist()
    pd.testing.assert_series_equal(back["throughput"], result.runs["throughput"])
    assert len(back) == len(result.runs)


@pytest.mark.parametrize("kind", ["plain", "grid", "failed", "hostile", "empty"])
def test_json_round_trip_gives_an_equal_result(tmp_path, kind):
    result = {
        "plain": lambda: make_result(),
        "grid": lambda: make_result(extra={"dtype": ["fp16", "q4"], "batch": [1, 2]},
                                    options={"nested": {"a": [1, 2.5, None]}}),
        "failed": hostile_result,
        "hostile": lambda: make_result(label=HOSTILE, workload="ünïcödé ✓"),
        "empty": lambda: SweepResult(runs=runs_frame([]), params=["cache_limit"], complete=False),
    }[kind]()
    path = result.to_json(str(tmp_path / "r.json"))
    loaded = mlxtune.load(path)
    assert_same_result(loaded, result)
    document = json.loads(Path(path).read_text(encoding="utf-8"))
    assert document["format"] == "mlxtune.sweep" and document["schema_version"] == SCHEMA_VERSION
    assert len(document["summary"]) == len(result.summary_frame())
    saved_fields = {f.name for f in dataclasses.fields(SweepResult)} - {"runs"}
    assert saved_fields <= set(document)


def test_json_keeps_nan_as_null_and_unlimited_exactly(tmp_path):
    text = Path(hostile_result().to_json(str(tmp_path / "r.json"))).read_text(encoding="utf-8")
    assert "NaN" not in text and "9223372036854775807" in text


def test_whatever_was_measured_can_be_saved_even_values_json_cannot_hold(tmp_path):
    class Model:
        def __repr__(self) -> str:
            return "<Model tiny>"

    rows = [row(limit, r, SPEEDS[limit], model=Model(), shape=(1, r), when=pd.Timestamp("2026-01-01"))
            for limit in LIMITS for r in range(2)]
    options = {"workload": len, "sizes": (1, 2), "array": np.arange(3), "inf": float("inf")}
    result = SweepResult(runs=runs_frame(rows, ["model", "shape"]), params=["cache_limit", "model", "shape"],
                         options=options)
    loaded = mlxtune.load(result.to_json(str(tmp_path / "odd.json")))
    assert loaded.options == {"workload": "<built-in function len>", "sizes": [1, 2],
                              "array": "array([0, 1, 2])", "inf": "inf"}
    assert set(loaded.runs["model"]) == {"<Model tiny>"} and set(loaded.runs["shape"]) == {"[1, 0]", "[1, 1]"}
    assert set(loaded.runs["when"]) == {"Timestamp('2026-01-01 00:00:00')"}
    same = ["model", "shape", "when"]
    pd.testing.assert_frame_equal(loaded.runs.drop(columns=same), result.runs.drop(columns=same))
    assert len(loaded.summary_frame()) == 2 * len(LIMITS)  # one point per limit and shape


def test_many_reports_leave_no_file_handles_or_temporaries_behind(tmp_path):
    result = make_result(repeats=2)
    gc.collect()  # what earlier tests left for the collector closes now, not while this one counts
    open_before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    for index in range(5):
        result.to_html(str(tmp_path / "r.html"), figures=["tradeoff"])
        result.to_markdown(str(tmp_path / "r.md"), figures=["tradeoff"])
        result.to_json(str(tmp_path / f"r{index}.json"))
        mlxtune.load(tmp_path / f"r{index}.json")
    if open_before is not None:
        assert len(os.listdir("/proc/self/fd")) == open_before
    assert leftovers(tmp_path) == []


# -- loading bad files ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_json(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("good") / "good.json"
    return Path(make_result(repeats=2).to_json(str(path))).read_bytes()


def load_error(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    with pytest.raises(ValueError) as caught:
        mlxtune.load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    return message


@pytest.mark.parametrize(("data", "expected"), [
    (b"", "not valid JSON"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8"),
    (b"<html></html>", "not valid JSON"),
    (b"[1, 2, 3]", "not an mlxtune results file"),
    (b'{"cells": [], "nbformat": 4}', "not an mlxtune results file"),
    (b'{"format": "mlxtune.sweep", "schema_version": "1"}', "invalid schema_version"),
    (b'{"format": "mlxtune.sweep", "schema_version": 1}', "field 'label'"),
    (b"[" * 100_000, "nested too deeply"),
])
def test_bad_files_give_one_clear_error(tmp_path, data, expected):
    assert expected in load_error(tmp_path / "bad.json", data)


def test_newer_and_inconsistent_files_are_named_as_such(tmp_path, good_json):
    document = json.loads(good_json)
    newer = load_error(tmp_path / "new.json", json.dumps({**document, "schema_version": 99}).encode())
    assert "newer mlxtune" in newer and "upgrade" in newer
    document["runs"][0]["throughput"] = "fast"
    assert "column 'throughput'" in load_error(tmp_path / "col.json", json.dumps(document).encode())
    with pytest.raises(FileNotFoundError):
        mlxtune.load(tmp_path / "missing.json")


@pytest.mark.parametrize("bad", [None, -1, 1.5])  # None: how a NaN is saved
def test_a_run_without_a_usable_cache_limit_fails_at_load_naming_the_file(tmp_path, good_json, bad):
    document = json.loads(good_json)
    document["columns"] = [[name, "float64" if name == "cache_limit" else dtype]
                           for name, dtype in document["columns"]]
    document["runs"][3]["cache_limit"] = bad
    message = load_error(tmp_path / "nan.json", json.dumps(document).encode())
    assert "run 3 has cache_limit" in message and "whole number of bytes >= 0" in message


@pytest.mark.parametrize(("where", "key", "value", "says"), [
    ("runs", "started_at", 1e20, "run 0 has started_at 1e+20: expected seconds since 1970"),
    ("runs", "peak_memory", None, "column 'peak_memory' holds null"),
    ("environment", "command", ["mlxtune", "sweep"], "field 'environment.command' is list, expected a"),
    ("options", "cache_limits", "lots", "field 'options.cache_limits' is \"lots\", expected a list of whole"),
    ("options", "cache_limits", ["1MB"], "field 'options.cache_limits'"),
    ("options", "budget", "2GB", "field 'options.budget'"),
])
def test_a_file_that_loads_is_one_every_report_can_render(tmp_path, good_json, where, key, value, says):
    """What the reports read as a size, a date or a command is checked at load: an odd value is one
    clear error naming the file, never a bare crash in a report later."""
    document = json.loads(good_json)
    if where == "runs":
        document["runs"][0][key] = value
    else:
        document[where][key] = value
    assert says in load_error(tmp_path / "odd.json", json.dumps(document).encode())


def test_csv_text_cells_are_never_live_formulas(tmp_path):
    import csv

    notes = ["=HYPERLINK(\"http://x\")", "@SUM(A1)", "+1", "-2", "plain"]
    result = make_result(label="x", extra={"note": notes})
    path = tmp_path / "runs.csv"
    result.to_csv(str(path))
    with path.open() as stream:
        notes = {row["note"] for row in csv.DictReader(stream)}
    assert notes == {"'=HYPERLINK(\"http://x\")", "'@SUM(A1)", "'+1", "'-2", "plain"}
    assert "-1" not in path.read_text().split("\n")[0]  # numbers (e.g. negative deltas) stay numbers
    named = make_result(label="x", extra={"=HYPERLINK(\"http://x\")": [1, 2]})  # a metric's name too
    header = Path(named.to_csv(str(tmp_path / "named.csv"))).read_text().split("\n")[0]
    assert "'=HYPERLINK" in header and ",=HYPERLINK" not in header


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0))
def test_every_truncation_of_a_good_file_is_one_value_error(tmp_path, good_json, cut):
    body = good_json.rstrip()
    load_error(tmp_path / "cut.json", body[: cut % len(body)])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200))
def test_garbage_bytes_are_one_value_error(tmp_path, data):
    load_error(tmp_path / "garbage.json", data)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.sampled_from(["top", "field", "row", "column"]), key=st.integers(min_value=0),
       value=JSON_VALUES)
def test_a_mutated_file_loads_cleanly_or_is_one_value_error(tmp_path, good_json, where, key, value):
    """Foreign values anywhere: either a result that works, or the one clear ValueError."""
    document = json.loads(good_json)
    if where == "top":
        document = value
    elif where == "field":
        document[sorted(document)[key % len(document)]] = value
    elif where == "row":
        first = document["runs"][0]
        first[sorted(first)[key % len(first)]] = value
    else:
        document["columns"][key % len(document["columns"])] = value
    path = tmp_path / "mutated.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    try:
        loaded = mlxtune.load(path)
    except ValueError as exc:
        assert str(exc).startswith(f"{path}: ")
        return
    loaded.summary_frame()
    loaded.recommend()


# -- atomic writes ----------------------------------------------------------------------------


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_an_error_while_rendering_leaves_the_good_report_in_place(tmp_path, monkeypatch):
    from mlxtune import plots

    result = make_result()
    html, markdown = tmp_path / "report.html", tmp_path / "report.md"
    result.to_html(str(html))
    result.to_markdown(str(markdown))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def broken(*args, **kwargs):
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr(plots, "memory", broken)
    for write in (result.to_html, result.to_markdown):
        with pytest.raises(RuntimeError, match="renderer crashed"):
            write(str(html if write == result.to_html else markdown))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


@pytest.mark.parametrize("failure", [OSError("disk full"), KeyboardInterrupt()])
def test_an_error_while_writing_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch, failure):
    path = tmp_path / "results.json"
    path.write_text("old and good")

    def fail(fd):
        raise failure

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(type(failure)):
        make_result().to_json(str(path))
    assert path.read_text() == "old and good"
    assert leftovers(tmp_path) == []


def test_written_files_are_readable_by_others_and_keep_a_replaced_files_mode(tmp_path):
    fresh = Path(files.write_atomic(tmp_path / "new.txt", "x"))
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o644
    fresh.chmod(0o600)
    files.write_atomic(fresh, b"y")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600 and fresh.read_bytes() == b"y"


@pytest.mark.parametrize("values", [[True, False], [None, 1], [1.5, 2], ["a", "b"], [1, "a"]])
def test_grid_values_of_every_json_scalar_type_survive_a_save_a_load_and_every_report(tmp_path, values):
    result = make_result(extra={"axis": values})
    loaded = mlxtune.load(result.to_json(str(tmp_path / "r.json")))
    assert loaded == result and loaded.recommend().reason
    for write in (loaded.to_html, loaded.to_markdown, loaded.to_csv):
        assert Path(write(str(tmp_path / "r.out"))).stat().st_size > 0


def test_a_grid_value_that_is_a_list_is_refused_before_a_sweep_and_at_load(tmp_path, good_json):
    with pytest.raises(PlanError, match="grid axis 'axis' values must be numbers, text, true/false"):
        mlxtune.sweep(lambda point: (lambda: 1), cache_limits=["0"], grid={"axis": [[1], [2]]})
    document = json.loads(Path(make_result(extra={"axis": ["a", "b"]}).to_json(str(tmp_path / "g.json")))
                          .read_text())
    document["runs"][0]["axis"] = [1, 2]
    assert "column 'axis' holds" in load_error(tmp_path / "list.json", json.dumps(document).encode())
