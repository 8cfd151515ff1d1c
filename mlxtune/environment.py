"""Where a measurement was taken: versions, backend, device, OS. Saved with every result."""

from __future__ import annotations

import datetime
import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from mlxtune.memory import device_info

__all__ = ["environment"]


def _installed(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def environment() -> dict[str, Any]:
    """A JSON-ready description of this machine and the versions that shape a measurement."""
    info = device_info()
    return {
        "mlxtune": _installed("mlxtune"),
        "mlx": _installed("mlx"),
        "mlx_lm": _installed("mlx-lm"),
        "backend": info["backend"],
        "device_name": str(info.get("device_name", info.get("architecture", "unknown"))),
        "device_memory": int(info.get("memory_size", info.get("total_memory", info["system_memory"]))),
        "system_memory": int(info["system_memory"]),
        "os": platform.platform(),
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
