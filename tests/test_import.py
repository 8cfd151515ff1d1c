"""A Linux install of mlx without a backend: importing mlxtune says what to install, in one line."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the hint is for Linux installs")
def test_backendless_mlx_gives_one_line_naming_the_extras() -> None:
    # A fresh interpreter where loading mlx.core fails as it does when no backend library is present.
    script = textwrap.dedent(
        """
        import importlib.abc, sys
        class NoBackend(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "mlx.core":
                    raise ImportError("libmlx.so: cannot open shared object file: No such file or directory")
        sys.meta_path.insert(0, NoBackend())
        try:
            import mlxtune
        except ImportError as exc:
            print(type(exc).__name__, exc, sep=": ")
        else:
            print("imported")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    out = done.stdout.strip()
    assert len(out.splitlines()) == 1, out
    assert out.startswith("ImportError: MLX is installed without a backend")
    for extra in ("mlx-memtune[cpu]", "mlx-memtune[cuda12]", "mlx-memtune[cuda13]"):
        assert extra in out
    assert "libmlx.so" in out  # the loader's own words are kept for whoever debugs it
