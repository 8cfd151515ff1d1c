"""One view under every surface: a limit reads the same in the magic, the panel, HTML, Markdown, the
command line and formatted frames, and no sentinel number reaches a person."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import mlx.core as mx
import pytest
from bs4 import BeautifulSoup
from sweep_data import make_result

from mlxtune import memory, present, stats
from mlxtune.cli import main
from mlxtune.record import Work
from mlxtune.sweep import sweep
from mlxtune.units import limit_text
from mlxtune.view import ratio_text
from mlxtune.widgets import SweepPanel

MIB4 = 4 * 1024**2  # as users write it: 4 * 1024 * 1024
SENTINEL = "9223372036854775807"


def work() -> int:
    a = mx.ones((128, 128))
    mx.eval(a @ a)
    return 1


def test_a_binary_limit_reads_as_typed_everywhere(tmp_path: Path, shell: Any,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    result = sweep(work, cache_limits=[0, MIB4, "unlimited"], repeats=4, warmup=0, progress=False)
    html_text = BeautifulSoup(Path(result.to_html(tmp_path / "r.html")).read_text(), "html.parser").get_text()
    markdown = Path(result.to_markdown(tmp_path / "r.md")).read_text()
    styled = present.formatted(result.summary_frame()).to_html()
    panel = SweepPanel(work, cache_limits=[0, MIB4, "unlimited"], out_dir=tmp_path)
    main(["sweep", "--workload", "mlxtune.workloads:allocator_churn", "--cache-limits", f"0,{MIB4},unlimited",
          "--repeats", "4", "--warmup", "0"])
    command = capsys.readouterr().out
    shell.run_cell_magic("mlxmem", f"--cache-limit {MIB4} -o -v cell", "x = 1")
    cell_text = str(shell.user_ns["cell"])
    surfaces = [("html", html_text), ("markdown", markdown), ("frame", styled), ("magic", cell_text),
                ("panel", panel.planned.value), ("command", command)]
    for surface, text in surfaces:
        assert "4MiB" in text, surface
        assert "4.19MB" not in text and SENTINEL not in text, surface
    assert [label for label, _ in panel.span.options] == ["0", "4MiB", "unlimited"]
    assert "unlimited" in html_text and "unlimited" in markdown
    panel.close()


def test_summarize_runs_once_per_html_render(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = stats.summarize

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(stats, "summarize", counting)
    result = make_result()
    result.to_html(tmp_path / "r.html")
    assert len(calls) == 1
    result.to_markdown(tmp_path / "r.md")  # the same result: its analysis is kept
    assert len(calls) == 1


def test_the_panels_plan_follows_every_control() -> None:
    panel = SweepPanel(work, cache_limits="0,1MB,16MB,unlimited", repeats=3)
    assert re.search(r"in 3 rounds: 12 runs", panel.planned.value)
    panel.repeats.value = 5
    assert "in 5 rounds: 20 runs" in panel.planned.value
    panel.points.value = 2
    assert "Sweeps 0, unlimited in 5 rounds: 10 runs" in panel.planned.value
    panel.adaptive.value = True
    assert "until the answer is decided, at most 5: up to 10 runs" in panel.planned.value
    panel.close()


def test_the_unit_is_the_one_measured_when_the_first_points_runs_all_failed() -> None:
    def tokens_unless_uncached() -> Work:
        if memory.get_cache_limit() == 0:
            raise RuntimeError("no cache, no tokens")
        mx.eval(mx.ones((256, 256)) * 2)
        return Work(units=4, unit="tokens")

    result = sweep(tokens_unless_uncached, cache_limits=["0", "1MB"], repeats=2, progress=False)
    assert result.failed_runs == 2 and result.unit == "tokens"
    assert "median tokens/s" in present.summary_table(result).headers


def _rows_with(texts: list[list[str]], limit: str) -> list[list[str]]:
    """The table rows (lists of cell texts) whose first cell names ``limit``."""
    return [cells for cells in texts
            if cells and re.sub(r" (★ recommended|\(safe.*)$", "", cells[0]) == limit]


def test_a_limit_its_ratio_and_its_verdict_read_the_same_on_every_surface(
        tmp_path: Path, shell: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """One sweep, from %%mlxsweep: its panel, summary(), the HTML and Markdown reports and the terminal text
    (``print(result)``, what ``mlxtune sweep`` prints) show each point's limit, ratio and verdict alike."""
    shell.user_ns.pop("swept", None)
    shell.run_cell_magic("mlxsweep", f"--cache-limits 0,{MIB4},unlimited -r 4 -w 0 --wait -v swept",
                         "x = mx.ones((256, 256))\nx @ x")
    panel = shell.user_ns["swept"]
    result = panel.result
    try:
        points = result.decision().points
        expected = {limit_text(int(p["cache_limit"])): (ratio_text(p["ratio"], p["ratio_low"],
                                                                                     p["ratio_high"]),
                                                                  str(p["verdict"]))
                    for _, p in points.iterrows()}
        html_rows = [[c.get_text(" ", strip=True) for c in tr.find_all(["th", "td"])] for tr in
                     BeautifulSoup(Path(result.to_html(tmp_path / "r.html")).read_text(), "html.parser")
                     .select("table.summary tr")]
        panel_rows = [[c.get_text(" ", strip=True) for c in tr.find_all(["th", "td"])]
                      for tr in BeautifulSoup(panel.table.value, "html.parser").select("tr")]
        markdown = Path(result.to_markdown(tmp_path / "r.md")).read_text()
        summary_section = markdown.split("## Summary", 1)[1].split("\n## ", 1)[0]
        markdown_rows = [[c.strip().replace("\\", "") for c in line.strip("|").split("|")]
                         for line in summary_section.splitlines() if line.startswith("|")]
        print(result)
        text_rows = [re.split(r"\s{2,}", line.strip()) for line in capsys.readouterr().out.splitlines()]
        words = result.summary()
        summary_rows = [[str(index), *map(str, row)]
                        for index, row in zip(words.index, words.values, strict=True)]
        assert words.raw.equals(result.summary_frame())
        for surface, rows in [("html", html_rows), ("panel", panel_rows), ("markdown", markdown_rows),
                              ("terminal", text_rows), ("summary()", summary_rows)]:
            for limit, (ratio, verdict) in expected.items():
                found = _rows_with(rows, limit)
                assert len(found) == 1, (surface, limit, rows)
                assert ratio in found[0] and verdict in found[0], (surface, limit, found[0])
    finally:
        panel.close()


def test_summary_reads_as_words_and_keeps_the_numbers_one_attribute_away() -> None:
    result = make_result()
    words = result.summary()
    limits = [limit_text(v) for v in result.summary_frame()["cache_limit"]]
    assert [re.sub(r" (★ recommended|\(safe.*)$", "", label) for label in words.index] == limits
    text = words.to_string() + words.to_html()
    assert SENTINEL not in text and "unlimited" in text and "nan" not in text.lower()
    assert not re.search(r"\d\.\d{5,}", text), "a raw float reached the readable summary"
    assert words.raw.equals(result.summary_frame()) and words.raw is not result.summary().raw
