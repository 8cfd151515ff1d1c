"""Writing results never destroys what is at the path: special files, failed writes, missing folders."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from sweep_data import make_result

from mlxtune import files


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="making a device needs root")
def test_a_character_device_is_written_in_place_never_replaced(tmp_path: Path) -> None:
    device = tmp_path / "null"  # a private copy of /dev/null (major 1, minor 3): never the real one
    os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    result = make_result()
    for write in (result.to_json, result.to_csv, result.to_html):
        write(str(device))
        assert stat.S_ISCHR(device.stat().st_mode) and device.stat().st_rdev == os.makedev(1, 3)
    assert leftovers(tmp_path) == []


def test_a_fifo_with_a_reader_gets_the_bytes_and_stays_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    while not received and reader.is_alive():  # wait until the reader has the FIFO open
        try:
            make_result().to_json(str(fifo))
            break
        except files.WriteError as exc:
            assert "no reader" in str(exc)
    reader.join(10)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert received and received[0].startswith(b"{")


def test_a_fifo_without_a_reader_is_refused_at_once_and_kept(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(files.WriteError, match=r"cannot write .*pipe: it is a FIFO with no reader"):
        make_result().to_json(str(fifo))
    assert stat.S_ISFIFO(fifo.stat().st_mode) and leftovers(tmp_path) == []


def test_a_link_to_a_report_keeps_the_link_and_replaces_its_target(tmp_path: Path) -> None:
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "latest.json"
    link.symlink_to(target)
    make_result().to_json(str(link))
    assert link.is_symlink() and target.read_text().startswith("{")


@pytest.mark.parametrize(
    ("where", "says"),
    [("nodir/x.json", "no folder .*nodir$"), (".", "it is a folder")],
)
def test_a_path_that_cannot_be_written_is_one_clear_error(tmp_path: Path, where: str, says: str) -> None:
    path = tmp_path / where
    with pytest.raises(files.WriteError, match=says) as caught:
        make_result().to_json(str(path))
    assert str(path) in str(caught.value) and ".tmp" not in str(caught.value)


def test_a_markdown_report_that_fails_to_write_leaves_every_old_file_byte_for_byte(tmp_path: Path) -> None:
    """The disk fills up while the report is written (RLIMIT_FSIZE): the new figures fit, the new
    Markdown (long: 600 raw runs) does not. Report and figures change together or not at all."""
    make_result(label="old").to_markdown(str(tmp_path / "report.md"))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert len(before) == 5  # the report and its four figures (no timelines in these runs)
    limit = 80_000  # above any figure (under 50 kB), below the new Markdown (over 100 kB)
    script = textwrap.dedent(f"""
        import resource, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from sweep_data import make_result
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
        try:
            make_result(label="new", repeats=120).to_markdown({str(tmp_path / "report.md")!r})
        except OSError as exc:
            print("failed:", exc)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "failed: cannot write" in done.stdout and "report.md" in done.stdout, done.stdout + done.stderr
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_name_near_the_file_systems_limit_is_written(tmp_path: Path) -> None:
    """A 245-character name is valid; the temporary file beside it must fit the limit too."""
    path = tmp_path / ("r" * 240 + ".json")
    written = make_result().to_json(str(path))
    assert Path(written).read_text().startswith("{") and len(path.name) == 245
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind
