"""A Jupyter environment for notebook tests: this interpreter's kernel, and a private copy of notebooks.

The ``python3`` kernelspec found first on a machine may start another Python (a user-level spec, a
system one). Tests write their own spec whose argv is ``sys.executable`` and put it first on
``JUPYTER_PATH``, so notebooks run in the environment under test. Jupyter's config, data and
runtime folders move into the test's temporary folder, so a user's settings never leak in.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(p.name for p in NOTEBOOKS_DIR.glob("*.ipynb"))


def jupyter_env(root: Path) -> dict[str, str]:
    """Environment variables for a kernel or server started under ``root`` with this Python's kernel."""
    spec = root / "jupyter-data" / "kernels" / "python3"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }))
    env = dict(os.environ)
    env.update({
        "JUPYTER_PATH": str(root / "jupyter-data"),
        "JUPYTER_CONFIG_DIR": str(root / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(root / "jupyter-runtime"),
        "IPYTHONDIR": str(root / "ipython"),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    })
    return env


def copy_notebooks(target: Path) -> Path:
    """Copy the project's notebooks into ``target`` (runs there write their files there) and return it."""
    target.mkdir(parents=True, exist_ok=True)
    for name in NOTEBOOKS:
        shutil.copy(NOTEBOOKS_DIR / name, target / name)
    return target
