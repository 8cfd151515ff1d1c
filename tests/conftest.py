"""Shared fixtures: a private model cache for the session and the tiny model built once in it."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")  # no "PyTorch was not found" noise


@pytest.fixture(scope="session", autouse=True)
def model_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point ``MLXTUNE_CACHE_DIR`` at a session temp dir so tests never write to the user's cache."""
    path = tmp_path_factory.mktemp("mlxtune-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLXTUNE_CACHE_DIR", str(path))
        yield path


@pytest.fixture(scope="session", autouse=True)
def ctrl_c_raises() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt, as in a terminal or a notebook, however the suite was started: a
    shell starts a background job with SIGINT ignored, and Python then installs no handler, so the
    tests that send themselves a real SIGINT would see nothing happen."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.fixture(scope="session")
def tiny_model_path(model_cache_dir: Path) -> Path:
    """The "tiny" random-weight llama model folder (built once per session, about a second).

    It sits where ``tiny_model()`` looks by default, so code under test that builds the tiny model
    itself (the demo) finds it ready.
    """
    from mlxtune.workloads import tiny_model

    return tiny_model(size="tiny")


@pytest.fixture(scope="module")
def shell() -> Iterator[Any]:
    """IPython's own shell with mlxtune's magics loaded (and ``mx``, ``memory`` imported in it)."""
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "mlxtune")
    ip.run_cell("import mlx.core as mx\nfrom mlxtune import memory")
    yield ip
    ip.run_line_magic("unload_ext", "mlxtune")
