"""Import ``mlx.core`` once, turning a backend-less Linux install into one clear message."""

from __future__ import annotations

import sys
import types

INSTALL_HINT = (
    "MLX is installed without a backend: on Linux install one of "
    "mlx-memtune[cpu], mlx-memtune[cuda12] or mlx-memtune[cuda13] (plain mlx is enough on macOS)"
)


def import_mlx() -> types.ModuleType:
    """Return ``mlx.core``; on Linux a failed import raises ImportError with :data:`INSTALL_HINT`.

    Plain ``mlx`` on Linux ships no backend library, so ``import mlx.core`` fails with a loader
    error that does not say what to install. Elsewhere the original error is the useful one.
    """
    try:
        import mlx.core as mx
    except (ImportError, OSError) as exc:
        if not sys.platform.startswith("linux"):
            raise
        raise ImportError(f"{INSTALL_HINT} ({exc})") from exc
    return mx


mx = import_mlx()
