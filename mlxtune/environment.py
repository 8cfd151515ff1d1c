"""Where a measurement was taken: versions, backend, device, OS. Saved with every result."""

from __future__ import annotations

import datetime
import functools
import os
import platform
import shlex
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from mlxtune.memory import device_info

__all__ = ["environment"]


def _installed(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _commit() -> str:
    """The git commit of the current folder's checkout (with "+changes" when it has some), or ""."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                              timeout=2, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=2, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"{head}+changes" if dirty else head


def _command() -> str:
    """How this process was started: the command line of a script or the ``mlxtune`` command."""
    argv = list(sys.argv)
    if not argv or argv[0] in ("", "-c") or "ipykernel" in argv[0]:
        return ""  # an interactive session or a notebook kernel: the options say what was called
    argv[0] = os.path.basename(argv[0])
    return shlex.join(argv)


def environment() -> dict[str, Any]:
    """A JSON-ready description of this machine and the versions that shape a measurement, and
    what a reader needs to reproduce it: the command, the commit, the CPU count and load.

    What cannot change while the process lives (versions, device, command, commit) is read once;
    the date and the load are read each time.
    """
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {**_static(), "load_average": round(load, 2),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


@functools.cache
def _static() -> dict[str, Any]:
    info = device_info()
    return {
        "mlxtune": _installed("mlx-memtune"),
        "mlx": _installed("mlx"),
        "mlx_lm": _installed("mlx-lm"),
        "numpy": _installed("numpy"),
        "pandas": _installed("pandas"),
        "backend": info["backend"],
        "device_name": str(info.get("device_name", info.get("architecture", "unknown"))),
        "device_memory": int(info.get("memory_size", info.get("total_memory", info["system_memory"]))),
        "system_memory": int(info["system_memory"]),
        "hostname": platform.node(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count() or 0,
        "command": _command(),
        "commit": _commit(),
    }
