"""Things worth measuring: mlx-lm prompt processing and generation, and allocator stress.

- :func:`tiny_model` builds a random-weight llama-style model folder (no downloads).
- :func:`lm` times a model through mlx-lm; :func:`lm_factory` makes one per grid point (``dtype``).
- :func:`chat` holds a multi-turn conversation in one prompt cache and reads memory after each turn.
- :func:`allocator_churn` allocates many short-lived buffers, for quick sweeps without a model.
"""

from __future__ import annotations

from mlxtune.workloads.chat import Chat, chat
from mlxtune.workloads.lm import DTYPES, LM, apply_dtype, lm, lm_factory, mlx_lm_cache_clearing
from mlxtune.workloads.models import MODEL_SIZES, cache_dir, model_config, tiny_model
from mlxtune.workloads.synthetic import AllocatorChurn, allocator_churn

__all__ = [
    "DTYPES",
    "LM",
    "MODEL_SIZES",
    "AllocatorChurn",
    "Chat",
    "allocator_churn",
    "apply_dtype",
    "cache_dir",
    "chat",
    "lm",
    "lm_factory",
    "mlx_lm_cache_clearing",
    "model_config",
    "tiny_model",
]
