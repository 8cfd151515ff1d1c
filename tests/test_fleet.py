"""Sweeps in other processes, on a real local ipyparallel cluster of two engines (loopback only).

The cluster is started by the fixture, under a profile in a private IPython folder so the command
line can find it by name, and stopped at the end; every number is measured by real MLX in the
engines. The engine-loss test starts a cluster of its own, since it kills an engine.
"""

from __future__ import annotations

import csv
import gc
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlx.core as mx
import pytest
from bs4 import BeautifulSoup
from sweep_data import make_result

import mlxtune
import mlxtune.fleet
from mlxtune import memory
from mlxtune.fleet_result import FleetResult
from mlxtune.report import markdown_text
from mlxtune.sweep import PlanError
from mlxtune.workloads import allocator_churn

ipp = pytest.importorskip("ipyparallel")
pytestmark = pytest.mark.timeout(300)

LIMITS = ["0", "1MB"]
PROFILE = "mlxtune-test"


def start_cluster(engines: int, **where: Any) -> Any:
    cluster = ipp.Cluster(n=engines, controller_ip="127.0.0.1", log_level=logging.ERROR, **where)
    cluster.start_and_connect_sync().close()  # started, with every engine up; tests connect their own
    return cluster


@pytest.fixture(scope="module")
def ipython_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private IPython folder for this module's profile (engines and commands inherit it)."""
    path = tmp_path_factory.mktemp("ipython")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IPYTHONDIR", str(path))
        yield path


@pytest.fixture(scope="module")
def cluster(ipython_dir: Path) -> Iterator[Any]:
    started = start_cluster(2, profile=PROFILE, cluster_id="")  # no id: `Client(profile=...)` finds it
    try:
        yield started
    finally:
        started.stop_cluster_sync()


@pytest.fixture
def client(cluster: Any) -> Iterator[Any]:
    connected = cluster.connect_client_sync()
    yield connected
    connected.close()  # its sockets, so later tests count this process's files without them


def limits_now() -> tuple[int, int]:
    return memory.get_cache_limit(), memory.get_memory_limit()


def test_an_isolated_sweep_gives_the_same_columns_and_leaves_this_process_alone(client: Any) -> None:
    here = mlxtune.sweep(allocator_churn(), cache_limits=LIMITS, repeats=2, progress=False)
    before = limits_now()
    mx.synchronize()
    mx.reset_peak_memory()
    active = mx.get_active_memory()
    seen: list[int] = []
    there = mlxtune.sweep(allocator_churn(), cache_limits=LIMITS, repeats=2, progress=False, isolate=client,
                          on_run=lambda record, progress: seen.append(progress.done))
    mx.synchronize()
    assert list(there.runs.columns) == list(here.runs.columns)
    assert there.params == here.params and len(there.runs) == 4 and there.failed_runs == 0
    assert there.complete and there.unit == "buffers" and (there.runs["peak_memory"] > 0).all()
    assert seen == [1, 2, 3, 4]  # each run came back as it ended, in order
    # nothing of it was allocated here: this process's limits, active memory and peak are as they were
    assert limits_now() == before
    assert mx.get_active_memory() == active and mx.get_peak_memory() <= active
    assert there.environment["hostname"] == here.environment["hostname"]


def test_an_isolated_sweep_of_a_model_compares_within_runs_and_its_blocks_come_back(
        client: Any, tiny_model_path: Path) -> None:
    before = limits_now()
    blocks: list[bool] = []
    result = mlxtune.sweep(str(tiny_model_path), cache_limits=LIMITS, repeats=4, progress=False,
                           isolate=client, on_run=lambda record, progress: blocks.append(record.block))
    assert result.design == "paired" and len(result.blocks) == 8 and result.unit == "tokens"
    assert blocks[:8] == [True] * 8 and not any(blocks[8:])  # the blocks, then the confirming whole runs
    assert 1 <= len(result.runs) <= 2 and (result.runs["error"] == "").all()
    assert limits_now() == before


def open_files() -> int:
    gc.collect()
    return len(os.listdir("/proc/self/fd"))


def test_an_on_run_that_raises_stops_the_isolated_sweep_and_keeps_its_runs(client: Any) -> None:
    def fails_at_the_second(record: Any, progress: Any) -> None:
        if progress.done == 2:
            raise RuntimeError("the front end broke")

    with pytest.raises(mlxtune.SweepError, match="on_run raised RuntimeError: the front end broke") as caught:
        mlxtune.sweep(allocator_churn(), cache_limits=LIMITS, repeats=50, progress=False, isolate=client,
                      on_run=fails_at_the_second)
    kept = caught.value.result
    assert not kept.complete and 2 <= len(kept.runs) < 100  # stopped in the engine, not run to its end
    after = mlxtune.sweep(allocator_churn(), cache_limits=LIMITS, repeats=1, progress=False, isolate=client)
    assert len(after.runs) == 2 and after.complete  # the engine took the next sweep: it was not busy


def test_isolate_true_starts_and_stops_an_engine_of_its_own() -> None:
    opened = []
    for _ in range(2):  # the first also opens what stays for the process (a messaging context, a loop)
        result = mlxtune.sweep("mlxtune.workloads:allocator_churn", cache_limits=["0"], repeats=1, warmup=0,
                               progress=False, isolate=True)
        assert result.label == "allocator_churn" and len(result.runs) == 1 and result.failed_runs == 0
        opened.append(open_files())
    assert opened[1] <= opened[0]  # each sweep's cluster and client are closed, sockets and pipes with them


def test_a_workload_that_cannot_travel_is_refused_before_any_engine_is_asked() -> None:
    lock = threading.Lock()

    def holds_a_lock() -> None:
        with lock:
            pass

    with pytest.raises(PlanError, match="cannot send workload 'holds_a_lock' to another process") as caught:
        mlxtune.sweep(holds_a_lock, cache_limits=["0"], isolate=object())
    assert "module:function" in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(PlanError, match="no model folder at 'no/such/dir/'"):
        mlxtune.fleet.sweep(object(), "no/such/dir/", cache_limits=["0"])


def test_a_fleet_sweep_tags_rows_by_engine_and_reloads_equal(client: Any, tmp_path: Path) -> None:
    fleet = mlxtune.fleet.sweep(client, allocator_churn(), engines="all", cache_limits=LIMITS, repeats=4,
                                progress=False, label="churn")
    host = fleet.results[next(iter(fleet.results))].environment["hostname"]
    names = [f"{host}#{engine}" for engine in sorted(client.ids)]
    assert fleet.hosts == names and not fleet.failures and fleet.complete
    counts = fleet.runs.groupby("host").size().to_dict()
    assert counts == {name: 8 for name in names} and fleet.runs.columns[0] == "host"
    assert set(fleet.environments["host"]) == set(names)
    rec = fleet.recommend()
    assert set(rec.hosts) == set(names)
    if rec.found:  # the fleet's limit is one every host shows fast
        assert all(rec.choice.verdicts.loc[rec.choice.verdicts["cache_limit"] == rec.cache_limit, names]
                   .eq("fast").all())
    with pytest.raises(ValueError, match="budget names hosts that are not in this fleet result: elsewhere"):
        fleet.recommend(budget={"elsewhere": "1GB"})

    reloaded = mlxtune.load(fleet.to_json(tmp_path / "fleet.json"))
    assert isinstance(reloaded, FleetResult) and reloaded == fleet
    with pytest.raises(ValueError, match=r"a fleet result .* load it with mlxtune.load"):
        mlxtune.SweepResult.load(tmp_path / "fleet.json")
    with open(fleet.to_csv(tmp_path / "fleet.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 16 and {r["host"] for r in rows} == set(names)
    page = BeautifulSoup(Path(fleet.to_html(tmp_path / "fleet.html")).read_text(), "html.parser")
    hosts_table = page.select_one("#hosts table")
    assert [td.get_text() for td in hosts_table.select("tbody tr td:first-child")] == names
    assert page.select("#figures img") and rec.reason in page.select_one("#recommendation").get_text()
    markdown = Path(fleet.to_markdown(tmp_path / "fleet.md")).read_text()
    assert "## Hosts" in markdown and all(f"## {markdown_text(name)}\n" in markdown for name in names)
    assert (tmp_path / "fleet-tradeoff.png").stat().st_size > 1000


@pytest.mark.parametrize("how", ["stop", "ctrl-c"])
def test_stopping_a_fleet_sweep_keeps_what_came_back(client: Any, how: str) -> None:
    stop = threading.Event()
    if how == "stop":
        threading.Timer(4.0, stop.set).start()
    else:  # SIGINT to this process: KeyboardInterrupt in the main thread, which waits on the engines
        threading.Timer(4.0, os.kill, (os.getpid(), signal.SIGINT)).start()
    fleet = mlxtune.fleet.sweep(client, allocator_churn(), engines="all", cache_limits=LIMITS, repeats=200,
                                progress=False, parallel=False, stop=stop)
    why = "stopped" if how == "stop" else "interrupted (KeyboardInterrupt)"
    assert not fleet.complete and fleet.stop_reason.startswith(why)
    first, second = fleet.hosts
    measured = fleet.results[first]
    assert not measured.complete and 0 < len(measured.runs) < 400  # interrupted in the engine, runs kept
    assert "interrupted" in measured.stop_reason
    assert fleet.failures == {second: f"not measured: the sweep was {why} before its turn"}


def dies_in_its_third_run(victim: int) -> Any:
    """Real allocator churn that kills its own engine process (as the OS kills one for memory) in its
    third measured run, in the engine whose pid is ``victim`` only: an event, not a timer."""
    churn, calls = allocator_churn(buffers=200), [0]

    def work() -> Any:
        calls[0] += 1
        if os.getpid() == victim and calls[0] == 4:  # one warm-up, then two measured runs came back
            os.kill(os.getpid(), signal.SIGKILL)
        return churn()

    return work


def test_an_isolated_sweep_whose_engine_dies_keeps_the_runs_it_sent_back(tmp_path: Path) -> None:
    import cloudpickle

    cluster = start_cluster(1, profile_dir=str(tmp_path / "profile"))
    client = cluster.connect_client_sync()
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    seen: list[int] = []
    try:
        pid = client[client.ids[0]].apply_sync(os.getpid)
        with pytest.raises(mlxtune.SweepError, match="the isolated sweep gave no result") as caught:
            mlxtune.sweep(dies_in_its_third_run(pid), cache_limits=LIMITS, repeats=6, progress=False,
                          isolate=client, on_run=lambda record, progress: seen.append(progress.done))
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        client.close()
        cluster.stop_cluster_sync()
    kept = caught.value.result
    assert seen and len(kept.runs) == len(seen)  # every run that came back before the engine died
    assert not kept.complete and "gave no result" in kept.stop_reason


def test_an_engine_lost_mid_sweep_is_recorded_and_the_other_hosts_rows_kept(tmp_path: Path) -> None:
    import cloudpickle

    cluster = start_cluster(2, profile_dir=str(tmp_path / "profile"))
    client = cluster.connect_client_sync()
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the engines cannot import this file
    try:
        pids = dict(zip(client.ids, client[client.ids].apply_sync(os.getpid), strict=True))
        victim = min(client.ids)  # engines on one host run one after another: the first one runs first
        fleet = mlxtune.fleet.sweep(client, dies_in_its_third_run(pids[victim]), engines="all",
                                    cache_limits=LIMITS, repeats=6, progress=False)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        client.close()
        cluster.stop_cluster_sync()
    lost = next(name for name in fleet.hosts if name.endswith(f"#{victim}"))
    kept = next(name for name in fleet.hosts if name != lost)
    assert "died" in fleet.failures[lost] or "EngineError" in fleet.failures[lost]
    assert len(fleet.results[kept].runs) == 12 and fleet.results[kept].failed_runs == 0
    # the runs the lost engine sent back before it died are kept: its two measured runs, or the first
    # alone when the kill outran the second's message on a busy machine
    streamed = fleet.results[lost]
    assert len(streamed.runs) in (1, 2) and streamed.failed_runs == 0 and not streamed.complete
    assert streamed.stop_reason == f"the engine was lost: {fleet.failures[lost]}"
    assert fleet.recommend().cache_limit is None  # a limit never measured on a device is not shipped to it
    assert f"{lost}: {fleet.failures[lost]}" in fleet.recommend().reason
    document = json.loads(Path(fleet.to_json(tmp_path / "partial.json")).read_text())
    assert document["failures"] == fleet.failures and set(document["hosts"]) == {kept, lost}
    assert mlxtune.load(tmp_path / "partial.json") == fleet
    page = fleet.to_html(tmp_path / "partial.html")
    assert "then failed: " in Path(page).read_text()  # the table says the host was lost, with its runs


def mlxtune_command(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlxtune", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=240)


def test_the_command_sweeps_a_cluster_by_profile_and_reports_and_compares_the_fleet(
        cluster: Any, tmp_path: Path) -> None:
    sweep = mlxtune_command("sweep", "--workload", "mlxtune.workloads:allocator_churn", "--cluster", PROFILE,
                            "--engines", "all", "--one-at-a-time", "--cache-limits", "0,1MB", "--repeats",
                            "4", "--out", "fleet.json", "--csv", "fleet.csv", cwd=tmp_path)
    assert sweep.returncode == 0, sweep.stderr
    fleet = mlxtune.load(tmp_path / "fleet.json")
    assert isinstance(fleet, FleetResult) and len(fleet.results) == 2 and not fleet.failures
    assert "Fleet recommendation: " + fleet.recommend().reason in sweep.stdout
    assert all(f"\n{host}:\n" in sweep.stdout for host in fleet.hosts)

    report = mlxtune_command("report", "fleet.json", "--md", "fleet.md", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert "## Hosts" in (tmp_path / "fleet.md").read_text()

    compared = mlxtune_command("compare", "fleet.json", "fleet.json", "--fail-if", "throughput<-50%",
                               "--html", "same.html", cwd=tmp_path)
    assert compared.returncode == 0, compared.stderr
    page = BeautifulSoup((tmp_path / "same.html").read_text(), "html.parser")
    first_cells = [row.select_one("td").get_text() for row in page.select("table.comparison tbody tr")]
    assert sorted(set(first_cells)) == sorted(fleet.hosts) and len(first_cells) == 4

    make_result().to_json(tmp_path / "one.json")
    against_one = mlxtune_command("compare", "fleet.json", "one.json", cwd=tmp_path)
    assert against_one.returncode == 2
    assert "compare a fleet result (one sweep per host) with another fleet result" in against_one.stderr


def test_the_command_runs_an_isolated_sweep(tmp_path: Path) -> None:
    isolated = mlxtune_command("sweep", "--workload", "mlxtune.workloads:allocator_churn", "--isolate",
                               "--cache-limits", "0", "--repeats", "1", "--warmup", "0", "--out", "one.json",
                               cwd=tmp_path)
    assert isolated.returncode == 0, isolated.stderr
    assert len(mlxtune.load(tmp_path / "one.json").runs) == 1


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--engines", "all"], 2, "--engines and --one-at-a-time say how a --cluster sweep runs"),
    (["--cluster", "nowhere"], 1, "cannot reach the ipyparallel cluster of profile 'nowhere'"),
    (["--cluster", "p", "--isolate"], 2, "not allowed with argument"),
])
def test_the_command_says_in_one_line_what_is_wrong_with_a_cluster(
        ipython_dir: Path, tmp_path: Path, args: list[str], code: int, message: str) -> None:
    done = mlxtune_command("sweep", "--workload", "mlxtune.workloads:allocator_churn", *args, cwd=tmp_path)
    assert done.returncode == code and message in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2 and "Traceback" not in done.stderr


def test_mlxsweep_isolate_runs_the_cell_in_an_engine_of_its_own(shell: Any) -> None:
    from mlxtune.widgets import SweepPanel

    shell.user_ns.pop("panel", None)
    shell.user_ns.pop("side", None)
    cell = "import mlx.core as mx\nside = 700\nx = mx.ones((512, 512))\nx @ x"
    shell.run_cell_magic("mlxsweep", "--isolate --cache-limits 0,16MB -r 2 -w 0 --units side --wait -v panel",
                         cell)
    panel = shell.user_ns["panel"]
    try:
        assert isinstance(panel, SweepPanel) and panel.isolate.value and panel.error == ""
        runs = panel.result.runs
        assert len(runs) == 4 and (runs["error"] == "").all() and (runs["units"] == 700).all()
        assert (runs["peak_memory"] >= 512 * 512 * 4).all()  # measured where it ran: in the engine
        assert "side" not in shell.user_ns  # the cell ran in the engine's namespace, not this one
        assert panel.progress.value == 4 and "4 runs" in panel.status.value
    finally:
        panel.close()


def test_the_panels_clean_process_box_sends_the_next_sweep_to_an_engine() -> None:
    from mlxtune.widgets import SweepPanel

    panel = SweepPanel(allocator_churn(), cache_limits=LIMITS, repeats=2, warmup=0)
    try:
        assert not panel.isolate.value
        panel.isolate.value = True  # as a click on the box does
        mx.synchronize()
        mx.reset_peak_memory()
        active = mx.get_active_memory()
        panel.run(wait=True)
        mx.synchronize()
        assert panel.error == "" and len(panel.result.runs) == 4 and panel.result.failed_runs == 0
        assert mx.get_peak_memory() <= active  # the buffers were allocated in the engine, not here
        assert not panel.isolate.disabled and not panel.run_button.disabled
    finally:
        panel.close()
