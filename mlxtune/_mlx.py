"""Import ``mlx.core`` once, turning a backend-less Linux install into one clear message."""

from __future__ import annotations

import sys

INSTALL_HINT = (
    "MLX is installed without a backend: on Linux install one of "
    "mlxtune[cpu], mlxtune[cuda12] or mlxtune[cuda13] (plain mlx is enough on macOS)"
)


def import_mlx():
    """Return ``mlx.core`` or raise ImportError with :data:`INSTALL_HINT`."""
    try:
        import mlx.core as mx
    except (ImportError, OSError) as exc:
        if sys.platform == "darwin" and "mlx" not in str(exc):
            raise
        raise ImportError(f"{INSTALL_HINT} ({exc})") from exc
    return mx


mx = import_mlx()
