"""The ``mlxtune`` command, driven in-process through ``main(argv)`` (and once as ``python -m``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pytest import CaptureFixture

from mlxtune import memory
from mlxtune.cli import build_parser, main
from mlxtune.fleet_result import load


def test_info_names_backend_versions_and_limits(capsys: CaptureFixture[str]) -> None:
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "backend" in out and "cpu" in out
    assert "cache limit" in out and "mlx lm" in out
    assert main(["info", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["backend"] == "cpu"
    assert facts["cache_limit"] == memory.get_cache_limit()


def test_sweep_a_workload_function_writes_json_and_csv(tmp_path: Path, capsys: CaptureFixture[str]) -> None:
    before = memory.get_cache_limit()
    out, csv = tmp_path / "r.json", tmp_path / "r.csv"
    code = main(["sweep", "--workload", "mlxtune.workloads:allocator_churn", "--grid", "buffers=20,40",
                 "--cache-limits", "0,unlimited", "--repeats", "4", "--warmup", "0", "--tolerance", "50%",
                 "--out", str(out), "--csv", str(csv)])  # a wide tolerance: decided whatever this CPU's noise
    printed = capsys.readouterr().out
    assert code == 0
    assert memory.get_cache_limit() == before
    result = load(out)
    assert result.params == ["cache_limit", "buffers"]
    assert len(result.runs) == 16 and result.failed_runs == 0
    assert set(result.runs["buffers"]) == {20, 40}  # grid values typed as ints
    assert csv.read_text().startswith("label,run,cache_limit,buffers,")
    # what was recommended depends on this machine's noise (a busy CPU may show no point fast); that the
    # recommendation the file gives is printed, with its code exactly when there is a limit to set, does not
    recommended = result.recommend(tolerance=0.5)
    assert f"Recommendation: {recommended.reason}" in printed
    assert ("mx.set_cache_limit(" in printed) == recommended.found
    assert f"wrote {out}" in printed


def test_sweep_a_model_over_a_dtype_grid(tiny_model_path: Path, tmp_path: Path,
                                         capsys: CaptureFixture[str]) -> None:
    out = tmp_path / "m.json"
    code = main(["sweep", "--model", str(tiny_model_path), "--grid", "dtype=float16,q4",
                 "--cache-limits", "0,unlimited", "--repeats", "1", "--warmup", "0",
                 "--prompt-tokens", "8", "--gen-tokens", "4", "--mlx-cache-clearing", "avoid",
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    result = load(out)
    assert set(result.runs["dtype"]) == {"float16", "q4"}
    assert (result.runs["unit"] == "tokens").all() and (result.runs["units"] == 4).all()
    assert "generation_tps" in result.runs


def test_failed_runs_give_exit_1_and_keep_the_file(tmp_path: Path, capsys: CaptureFixture[str]) -> None:
    out = tmp_path / "f.json"
    code = main(["sweep", "--workload", "mlxtune.workloads:allocator_churn", "--grid", "buffers=0",
                 "--cache-limits", "0", "--repeats", "1", "--warmup", "0", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and "1 of 1 runs failed" in err[0] and "buffers must be" in err[0]
    assert load(out).failed_runs == 1


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        ([], "required: COMMAND"),
        (["sweep"], "one of the arguments --model --workload is required"),
        (["sweep", "--workload", "m:f", "--cache-limits", "1ZB"], "invalid size '1ZB'"),
        (["sweep", "--workload", "m:f", "--cache-limits", ","], "no cache limits given"),
        (["sweep", "--workload", "m:f", "--repeats", "0"], "whole number >= 1"),
        (["sweep", "--workload", "m:f", "--grid", "dtype"], "invalid grid axis 'dtype'"),
        (["sweep", "--workload", "mlxtune.workloads"], "expected MODULE:FUNCTION"),
        (["sweep", "--workload", "no_such_module_x:f"], "cannot import 'no_such_module_x'"),
        (["sweep", "--workload", "mlxtune.workloads:nothing"], "has no 'nothing'"),
        (["sweep", "--workload", "mlxtune.workloads:DTYPES"], "not a function returning a workload"),
        (["sweep", "--workload", "mlxtune.workloads:allocator_churn", "--grid", "a=1", "--grid", "a=2"],
         "given twice"),
        (["demo", "--size", "huge"], "invalid choice: 'huge'"),
        (["sweep", "--model", "./no/such/folder"], "no model folder at './no/such/folder'"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv: list[str], says: str, capsys: CaptureFixture[str]) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert says in lines[0] and lines[0].startswith("mlxtune")
    assert captured.out == ""


def test_demo_builds_sweeps_and_says_where_its_files_are(tiny_model_path: Path, tmp_path: Path,
                                                         capsys: CaptureFixture[str]) -> None:
    out_dir = tmp_path / "demo-out"
    code = main(["demo", "--size", "tiny", "--out-dir", str(out_dir), "--repeats", "1", "--warmup", "0",
                 "--cache-limits", "0,unlimited", "--prompt-tokens", "8", "--gen-tokens", "4"])
    printed = capsys.readouterr().out
    assert code == 0
    assert str(tiny_model_path) in printed  # reused, not rebuilt
    for name in ("demo.json", "demo.csv"):
        assert (out_dir / name).is_file()
        assert str(out_dir / name) in printed
    saved = load(out_dir / "demo.json")
    assert saved.design == "paired" and len(saved.blocks) == 2  # one cycle of the two limits
    assert 1 <= len(saved.runs) <= 2  # the whole runs that give the memory shown
    assert "Recommendation:" in printed


def test_python_dash_m_reports_usage_errors_without_traceback() -> None:
    done = subprocess.run([sys.executable, "-m", "mlxtune", "sweep", "--workload", "no_such_module_x:f"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "mlxtune sweep: error: cannot import 'no_such_module_x' for --workload: "
        "No module named 'no_such_module_x'"
    ]


def test_a_reader_that_goes_away_ends_the_command_quietly() -> None:
    # `mlxtune info | head -1` once head has gone: stdout is a pipe nobody reads any more.
    script = (
        "import os, sys\n"
        "r, w = os.pipe(); os.close(r); os.dup2(w, 1)\n"
        "from mlxtune.cli import main\n"
        "sys.exit(main(['info']))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 141
    assert done.stderr == ""


# -- nothing lost: outputs checked first, a failed write saved elsewhere, errors printed safely ------

WORKLOADS = '''
import pathlib

def marked():
    pathlib.Path("ran").touch()
    return lambda: 1

class TearsDown:
    def __call__(self):
        return 1
    def teardown(self):
        raise RuntimeError("teardown broke")

def loud():
    def run():
        raise RuntimeError("bad \\x1b[31mred\\x1b]0;title\\x07 text")
    return run
'''


@pytest.fixture
def workloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A module of odd workloads in the current folder, importable by --workload under a fresh name."""
    name = f"odd_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(WORKLOADS)
    monkeypatch.chdir(tmp_path)
    return Path(name)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--out", "nodir/x.json"], "--out: cannot write nodir/x.json: no folder nodir"),
        (["--csv", "."], "--csv: cannot write .: it is a folder"),
        (["--timeout", "inf"], "expected a number of seconds > 0 and at most 86400, not 'inf'"),
        (["--grid", "throughput=1,2"], "clashes with a measured column"),
        (["--grid", "label=a,b", "--csv", "out.csv"], "grid axis 'label' clashes with a column"),
        (["--max-seconds", "5"], "--max-runs and --max-seconds bound an adaptive sweep: give --repeats auto"),
        (["--max-runs", "8"], "--max-runs and --max-seconds bound an adaptive sweep: give --repeats auto"),
        # the magic's spelling is not read as --cache-limits: one limit could compare nothing
        (["--cache-limit", "1MB"], "unrecognized arguments: --cache-limit 1MB"),
    ],
)
def test_unusable_arguments_and_outputs_exit_2_before_anything_runs(
        workloads: Path, argv: list[str], says: str, capsys: CaptureFixture[str]) -> None:
    code = main(["sweep", "--workload", f"{workloads}:marked", "--cache-limits", "0", "--repeats", "1",
                 *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and says in err[0]
    assert not Path("ran").exists()  # the workload was never built


def test_a_write_that_fails_after_the_sweep_exits_3_and_saves_the_result_elsewhere(
        workloads: Path, capsys: CaptureFixture[str]) -> None:
    os.mkfifo("results.json")  # passes the check, then has no reader when the result is written
    code = main(["sweep", "--workload", f"{workloads}:marked", "--cache-limits", "0,1MB", "--repeats", "2",
                 "--warmup", "0", "--out", "results.json"])
    captured = capsys.readouterr()
    assert code == 3, captured.err
    assert "cannot write results.json: it is a FIFO with no reader" in captured.err
    saved = re.search(r"the result was saved in (\S+) instead", captured.err)
    assert saved is not None and len(load(saved.group(1)).runs) == 4
    assert "Recommendation:" in captured.out


def test_a_teardown_that_fails_keeps_the_summary_and_the_file(workloads: Path,
                                                              capsys: CaptureFixture[str]) -> None:
    code = main(["sweep", "--workload", f"{workloads}:TearsDown", "--cache-limits", "0", "--repeats", "2",
                 "--warmup", "0", "--out", "t.json"])
    captured = capsys.readouterr()
    assert code == 1 and "teardown() failed after the runs: RuntimeError: teardown broke" in captured.err
    assert "Recommendation:" in captured.out and len(load("t.json").runs) == 2


def test_escape_sequences_in_errors_reach_the_terminal_as_text(workloads: Path,
                                                               capsys: CaptureFixture[str]) -> None:
    code = main(["sweep", "--workload", f"{workloads}:loud", "--cache-limits", "0", "--repeats", "1",
                 "--warmup", "0"])
    captured = capsys.readouterr()
    assert code == 1
    assert "\x1b" not in captured.err + captured.out and "\x07" not in captured.err
    assert "bad \\x1b[31mred\\x1b]0;title\\x07 text" in captured.err


def test_report_refuses_to_overwrite_its_input_and_checks_folders_first(tmp_path: Path,
                                                                       capsys: CaptureFixture[str]) -> None:
    from sweep_data import make_result

    saved = tmp_path / "run.html"  # results saved under an .html name
    make_result().to_json(str(saved))
    before = saved.read_bytes()
    assert main(["report", str(saved)]) == 2
    assert "would overwrite the input" in capsys.readouterr().err
    assert main(["report", str(saved), "--html", str(tmp_path / "nodir" / "r.html")]) == 2
    assert "no folder" in capsys.readouterr().err
    assert saved.read_bytes() == before


def test_sweeps_default_to_until_decided_on_every_surface() -> None:
    """A default that cannot answer (3 runs, where the rule needs 4) is not a default."""
    import inspect

    from mlxtune.magics import MlxtuneMagics, parse_options
    from mlxtune.sweep import sweep
    from mlxtune.widgets import SweepPanel

    assert build_parser().parse_args(["sweep", "--workload", "m:f"]).repeats == "auto"
    assert inspect.signature(sweep).parameters["repeats"].default == "auto"
    assert parse_options(MlxtuneMagics.mlxsweep, "").repeats == "auto"
    panel = SweepPanel(lambda: None)
    try:
        assert panel.adaptive.value
    finally:
        panel.close()
