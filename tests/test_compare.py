"""Comparisons: real changes are called, noise is not; gates; the `mlxtune compare` exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bs4 import BeautifulSoup
from sweep_data import LIMITS, MB, SPEEDS, make_result, row
from test_report import markdown_tables

import mlxtune
from mlxtune.compare import comparison_text, write_comparison_html, write_comparison_markdown
from mlxtune.comparison import check_gates
from mlxtune.gates import Gate, GateResult, parse_gate
from mlxtune.record import runs_frame
from mlxtune.result import SweepResult
from mlxtune.view import gate_finding_text, gate_result_text

SLOWER = {limit: speed * 0.8 for limit, speed in SPEEDS.items()}


def failure_texts(result: GateResult) -> list[str]:
    """A checked gate's failures as the terminal and the reports word them."""
    return [gate_finding_text(found, result.gate.metric) for found in result.failures]


def noisy_comparison():
    """A 20% drop hidden in 30% noise, 3 runs a side."""
    return mlxtune.compare(make_result(repeats=3, noise=0.3, seed=3),
                           make_result(SLOWER, repeats=3, noise=0.3, seed=4))


def test_a_clear_20_percent_drop_is_called_at_every_point():
    frame = mlxtune.compare(make_result(seed=1), make_result(SLOWER, seed=2, label="slower"))
    assert list(frame["cache_limit"]) == list(LIMITS)
    assert frame["throughput_changed"].all() and frame["throughput_significant"].all()
    np.testing.assert_allclose(frame["throughput_change"], -0.2, atol=0.03)
    assert (frame["throughput_ratio_low"] < 0.83).all() and (frame["throughput_ratio_high"] > 0.77).all()
    assert (frame["throughput_ratio_low"] <= frame["throughput_ratio_high"]).all()
    np.testing.assert_allclose(frame["throughput_ratio"], frame["throughput_b"] / frame["throughput_a"])
    assert not frame["peak_changed"].any() and (frame["peak_diff"] == 0).all()
    assert frame.attrs["labels"] == ["tiny fp16", "slower"]


def test_two_samples_of_the_same_distribution_are_never_called_a_change():
    called = 0
    for seed in range(10):
        frame = mlxtune.compare(make_result(seed=seed, noise=0.03), make_result(seed=100 + seed, noise=0.03))
        called += int(frame["throughput_changed"].sum())
    assert called == 0


def test_a_change_must_beat_both_the_noise_and_the_factor():
    noisy = noisy_comparison()
    assert not noisy["throughput_changed"].any()  # 20% inside 30% noise with 3 runs: not shown to be real
    slight = {limit: speed * 0.97 for limit, speed in SPEEDS.items()}
    small = mlxtune.compare(make_result(repeats=10, noise=0.001),
                            make_result(slight, repeats=10, noise=0.001, seed=5))
    assert small["throughput_significant"].all()  # certainly different...
    assert not small["throughput_changed"].any()  # ...but by less than the 5% factor
    finer = mlxtune.compare(make_result(noise=0.002), make_result(slight, noise=0.002, seed=5), factor=1.01)
    assert finer["throughput_changed"].all()


def test_a_change_counts_only_when_its_whole_interval_shows_it():
    """The recommendation's standard: the ratio's interval must lie beyond 1 (significant) or beyond the
    factor (changed); an interval that reaches across is not a change, however large the estimate."""
    clear = mlxtune.compare(make_result(repeats=3, noise=0.001), make_result(SLOWER, repeats=3, noise=0.001))
    assert (clear["throughput_ratio_high"] < 0.95).all() and clear["throughput_changed"].all()
    one_run = mlxtune.compare(make_result(repeats=1), make_result(SLOWER, repeats=1, seed=9))
    assert not one_run["throughput_significant"].any()  # one run a side proves nothing
    noisy = noisy_comparison()
    crossing = noisy[(noisy["throughput_ratio_low"] < 1) & (noisy["throughput_ratio_high"] > 1)]
    assert len(crossing) and not crossing["throughput_significant"].any()


def test_memory_growth_is_reported_in_bytes_and_relative():
    def result(peak: int, label: str) -> SweepResult:
        rows = [row(limit, r, SPEEDS[limit], peak=peak) for limit in LIMITS for r in range(3)]
        return SweepResult(runs=runs_frame(rows), params=["cache_limit"], label=label)

    frame = mlxtune.compare(result(100 * MB, "before"), result(120 * MB, "after"))
    assert (frame["peak_diff"] == 20 * MB).all() and frame["peak_change"].tolist() == pytest.approx([0.2] * 5)
    assert frame["peak_changed"].all() and frame["footprint_changed"].all()
    failed = check_gates(frame, ["peak>+10%", "footprint>+50%", "throughput<-5%"])
    assert [r.passed for r in failed] == [False, True, True]
    assert failure_texts(failed[0])[0] == "cache limit 0: +20.0% (100MB -> 120MB)"
    first = failed[0].failures[0]
    assert first.point == {"cache_limit": 0} and first.change == pytest.approx(0.2)


def test_compare_takes_paths_and_needs_the_same_grid_axes(tmp_path):
    a, b = make_result(seed=1), make_result(SLOWER, seed=2)
    frame = mlxtune.compare(a.to_json(str(tmp_path / "a.json")), Path(b.to_json(str(tmp_path / "b.json"))))
    assert frame["throughput_changed"].all()
    gridded = make_result(extra={"dtype": ["fp16"]})
    with pytest.raises(ValueError, match="different grid axes"):
        mlxtune.compare(a, gridded)
    partial = make_result({0: 100.0, 1 * MB: 130.0, 3 * MB: 150.0})
    assert list(mlxtune.compare(a, partial)["cache_limit"]) == [0, 1 * MB]
    with pytest.raises(TypeError, match="SweepResult or the path"):
        mlxtune.compare(a, 42)
    with pytest.raises(ValueError, match="factor"):
        mlxtune.compare(a, b, factor=0.9)


@pytest.mark.parametrize(("text", "gate"), [
    ("throughput<-5%", Gate("throughput", "<", -5.0)),
    (" peak > +10.5 % ", Gate("peak", ">", 10.5)),
    ("footprint>+5%", Gate("footprint", ">", 5.0)),
])
def test_gates_parse(text, gate):
    assert parse_gate(text) == gate
    assert parse_gate(str(gate)) == gate


def test_a_threshold_without_a_sign_is_refused_rather_than_guessed():
    with pytest.raises(ValueError, match=r"give the threshold a sign, throughput<-5% for a drop or "):
        parse_gate("throughput<5%")


def test_results_that_count_different_things_are_refused():
    with pytest.raises(ValueError, match=r"count different things \(tokens/s and buffers/s\)"):
        mlxtune.compare(make_result(), make_result(unit="buffers"))


@pytest.mark.parametrize("text", ["throughput<-5", "speed<-5%", "peak=10%", "peak>>10%", "", "peak>ten%",
                                  "<5%"])
def test_malformed_gates_give_one_clear_error(text):
    with pytest.raises(ValueError, match=r"invalid gate .*expected METRIC<PERCENT% or METRIC>PERCENT%"):
        parse_gate(text)


def test_gates_fail_on_real_changes_only_and_when_every_new_run_failed():
    noisy = noisy_comparison()
    (gate,) = check_gates(noisy, ["throughput<-5%"])
    assert gate.passed and gate.within_noise  # crossed, but not beyond the noise: reported, not failed
    assert "crossed but within noise" in gate_result_text(gate)
    rows = [row(limit, r, 1.0, error="RuntimeError: out of memory") for limit in LIMITS for r in range(3)]
    broken = SweepResult(runs=runs_frame(rows), params=["cache_limit"], label="broken")
    (lost,) = check_gates(mlxtune.compare(make_result(), broken), ["throughput<-50%"])
    assert not lost.passed
    assert "3 of 3 runs failed in the new result (0 of 5 in the baseline)" in failure_texts(lost)[0]
    # most runs crashing is a regression too, though the one that finished was as fast as before
    crashing = [row(limit, r, SPEEDS[limit], error="RuntimeError: crashed" if r else "")
                for limit in LIMITS for r in range(3)]
    shaky = SweepResult(runs=runs_frame(crashing), params=["cache_limit"], label="shaky", unit="tokens")
    for gate in check_gates(mlxtune.compare(make_result(repeats=3), shaky), ["throughput<-5%", "peak>+10%"]):
        assert not gate.passed and "2 of 3 runs failed in the new result" in failure_texts(gate)[0]
    with pytest.raises(ValueError, match="share no grid point"):
        check_gates(mlxtune.compare(make_result({0: 1.0}), make_result({1: 1.0})), ["peak>+1%"])


def test_comparison_reports_show_both_sides_with_changes_highlighted(tmp_path):
    a = make_result(seed=1)
    b = make_result(SLOWER, seed=2, label="<script>alert(1)</script>",
                    environment={**a.environment, "mlx": "0.33.0"})
    soup = BeautifulSoup(Path(write_comparison_html(a, b, tmp_path / "c.html", gates=["throughput<-5%"]))
                         .read_text(encoding="utf-8"), "html.parser")
    assert soup.find_all("script") == [] and "<script>alert(1)</script>" in soup.h1.get_text()
    table = soup.find("table", class_="comparison")
    assert len(table.find("tbody").find_all("tr")) == len(LIMITS)
    assert len(table.find_all("td", class_="worse")) == len(LIMITS)
    assert not table.find_all("td", class_="better")
    assert "Throughput changed at 5 of 5 points" in soup.find(class_="headline").get_text()
    assert soup.find("table", class_="gates").find("td", class_="worse").get_text() == "FAIL"
    (differing,) = [r for r in soup.find("table", class_="environment").find_all("tr", class_="differs")
                    if r.find("td").get_text() == "MLX"]
    assert [td.get_text() for td in differing.find_all("td")] == ["MLX", "0.32.4", "0.33.0"]
    assert len(soup.find_all("img")) == 2

    text = Path(write_comparison_markdown(a, b, tmp_path / "c.md")).read_text(encoding="utf-8")
    side_by_side = markdown_tables(text)[0]
    assert side_by_side[0][0] == "cache limit" and len(side_by_side) == 1 + len(LIMITS)
    assert all(r[3].startswith("**-") for r in side_by_side[1:])
    assert (tmp_path / "c-tradeoff.png").exists() and "<script>" not in text
    text = comparison_text(mlxtune.compare(a, b))
    lines = text.splitlines()
    assert "warning: the MLX version differs: 0.32.4 / 0.33.0" in lines
    header = next(line for line in lines if line.startswith("cache limit"))
    assert "A (tokens/s)" in header and "B (tokens/s)" in header  # units in the table, not dropped
    assert sum("*" in line for line in lines) == 5  # every point's drop is marked as a real change


# -- the command line -------------------------------------------------------------------------


def mlxtune_cli(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlxtune", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("saved")
    garbage = folder / "garbage.json"
    garbage.write_text('{"format": "mlxtune.sweep", "schema_version": 1, "label"')
    return {
        "base": Path(make_result(seed=1).to_json(str(folder / "base.json"))),
        "slower": Path(make_result(SLOWER, seed=2).to_json(str(folder / "slower.json"))),
        "same": Path(make_result(seed=3).to_json(str(folder / "same.json"))),
        "garbage": garbage,
    }


def test_cli_gate_fails_with_exit_1_and_names_the_gate(saved, tmp_path):
    done = mlxtune_cli("compare", saved["base"], saved["slower"], "--fail-if", "throughput<-5%",
                       "--fail-if", "peak>+10%", "--html", tmp_path / "c.html")
    assert done.returncode == 1, done.stderr
    assert "FAIL throughput<-5%" in done.stdout and "PASS peak>+10%" in done.stdout
    assert done.stderr.strip() == "mlxtune compare: 1 of 2 gates failed: throughput<-5%"
    assert (tmp_path / "c.html").exists()


def test_cli_gate_passes_with_exit_0_on_noise(saved):
    done = mlxtune_cli("compare", saved["base"], saved["same"], "--fail-if", "throughput<-5%")
    assert done.returncode == 0, done.stderr
    assert "PASS throughput<-5%" in done.stdout and done.stderr == ""


@pytest.mark.parametrize(("args", "expected"), [
    (["missing.json"], "No such file"),
    (["garbage"], "not valid JSON"),
    (["same", "--fail-if", "throughput<5"], "invalid gate 'throughput<5'"),
])
def test_cli_bad_files_and_gates_exit_2_in_one_line(saved, args, expected):
    args = [saved.get(a, a) for a in args]
    done = mlxtune_cli("compare", saved["base"], *args)
    assert done.returncode == 2
    assert expected in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_cli_report_renders_saved_results(saved, tmp_path):
    done = mlxtune_cli("report", saved["base"], "--html", tmp_path / "r.html", "--md", tmp_path / "r.md")
    assert done.returncode == 0, done.stderr
    assert f"wrote {tmp_path / 'r.html'}" in done.stdout
    assert BeautifulSoup((tmp_path / "r.html").read_text(encoding="utf-8"), "html.parser").find("table")
    assert markdown_tables((tmp_path / "r.md").read_text(encoding="utf-8"))


def test_cli_report_without_flags_writes_html_beside_the_results(saved, tmp_path, capsys):
    from mlxtune.cli import main

    results = tmp_path / "sweep.json"
    results.write_bytes(saved["base"].read_bytes())
    assert main(["report", str(results)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / 'sweep.html'}"
    assert BeautifulSoup((tmp_path / "sweep.html").read_text(encoding="utf-8"), "html.parser").find("img")
