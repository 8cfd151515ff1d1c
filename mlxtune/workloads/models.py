"""Small llama-style models with random weights and a locally trained tokenizer, saved as model folders.

Tests, the demo and the benchmarks need a real model folder that ``mlx_lm.load`` reads, without
downloading anything. :func:`tiny_model` builds one from a named size: random weights (seeded), a
byte-level BPE tokenizer trained on generated text, ``config.json`` and ``model.safetensors``. The
folder lives in a cache directory named after a hash of everything that shapes it, is written
under a temporary name and renamed into place, so a half-written folder is never reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["MODEL_SIZES", "cache_dir", "model_config", "tiny_model"]

#: Llama-style shapes by name. "1b" is TinyLlama-1.1B's shape (about 1.1B parameters).
MODEL_SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, intermediate_size=128, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=512, tie_word_embeddings=True, dtype="float32"),
    "small": dict(hidden_size=512, num_hidden_layers=8, intermediate_size=1408, num_attention_heads=8,
                  num_key_value_heads=4, vocab_size=4096, tie_word_embeddings=True, dtype="float32"),
    "medium": dict(hidden_size=1024, num_hidden_layers=16, intermediate_size=2816, num_attention_heads=16,
                   num_key_value_heads=4, vocab_size=32000, tie_word_embeddings=False, dtype="float16"),
    "1b": dict(hidden_size=2048, num_hidden_layers=22, intermediate_size=5632, num_attention_heads=32,
               num_key_value_heads=4, vocab_size=32000, tie_word_embeddings=False, dtype="float16"),
}

#: Bump when the recipe (text, tokenizer, initialisation) changes, so old folders are not reused.
RECIPE_VERSION = 2

_SPECIAL_TOKENS = ("<s>", "</s>", "<unk>")
_REQUIRED_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json")
_DTYPES = ("float32", "float16", "bfloat16")


def cache_dir() -> Path:
    """Where built models go: ``$MLXTUNE_CACHE_DIR``, else ``$XDG_CACHE_HOME/mlxtune``, else ``~/.cache``."""
    if explicit := os.environ.get("MLXTUNE_CACHE_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mlxtune"


def model_config(size: str = "tiny", **overrides: Any) -> dict[str, Any]:
    """The ``config.json`` content for a named size, with field overrides (e.g. ``num_hidden_layers=4``)."""
    if size not in MODEL_SIZES:
        raise ValueError(f"unknown model size {size!r}: expected one of {', '.join(MODEL_SIZES)}")
    fields = {**MODEL_SIZES[size], **overrides}
    dtype = fields.pop("dtype")
    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r} for the weights: expected one of {', '.join(_DTYPES)}")
    if fields["vocab_size"] < 300:
        raise ValueError("vocab_size must be at least 300 (256 bytes, special tokens and some merges)")
    return {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "max_position_embeddings": 4096,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "torch_dtype": dtype,
        **fields,
    }


def tiny_model(path: str | os.PathLike[str] | None = None, size: str = "tiny", seed: int = 0,
               **overrides: Any) -> Path:
    """Build (or reuse) a random-weight llama-style model folder and return its path.

    ``size`` picks a shape from :data:`MODEL_SIZES`; ``overrides`` change single config fields
    (``dtype="float16"`` sets the saved weights' type). Without ``path`` the folder goes to
    ``cache_dir()/models/<size>-<hash>``, the hash covering the config, the seed and the recipe, so
    the same call is instant the second time. The folder is complete or absent, never half written.
    """
    config = model_config(size, **overrides)
    digest = hashlib.sha256(json.dumps([config, seed, RECIPE_VERSION], sort_keys=True).encode()).hexdigest()
    target = Path(path) if path is not None else cache_dir() / "models" / f"{size}-{digest[:12]}"
    if _complete(target):
        return target
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{target} exists but is not a complete model folder; remove it")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        _write_model(staging, config, seed)
        if target.exists():
            target.rmdir()  # an empty folder the caller made for us
        try:
            staging.rename(target)
        except OSError:
            if not _complete(target):  # a parallel build did not win the race either
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _complete(folder: Path) -> bool:
    """Config, tokenizer and weights (one file, or shards past mlx-lm's 5GB shard size) present."""
    weights = folder.is_dir() and any(folder.glob("model*.safetensors"))
    return weights and all((folder / name).is_file() for name in _REQUIRED_FILES)


def _write_model(folder: Path, config: dict[str, Any], seed: int) -> None:
    """Weights, config and tokenizer into ``folder``, with mlx-lm's own writers."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models.llama import Model, ModelArgs
    from mlx_lm.utils import save_config, save_model

    mx.random.seed(seed)
    model = Model(ModelArgs.from_dict(config))
    model.set_dtype(getattr(mx, config["torch_dtype"]))
    mx.eval(model.parameters())
    n_params = sum(v.size for _, v in tree_flatten(model.parameters()))
    save_model(folder, model, donate_model=True)  # donating frees each weight once written
    del model
    save_config(dict(config), folder / "config.json")
    _write_tokenizer(folder, config["vocab_size"], seed)
    (folder / "mlxtune-model.json").write_text(json.dumps({"recipe": RECIPE_VERSION, "seed": seed,
                                                           "parameters": n_params}))


def _write_tokenizer(folder: Path, vocab_size: int, seed: int) -> None:
    """Train a byte-level BPE of exactly ``vocab_size`` tokens on generated text and save it.

    Saved through ``transformers`` so ``tokenizer.json`` and ``tokenizer_config.json`` load offline
    with ``AutoTokenizer`` (which is what ``mlx_lm.load`` uses).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_training_text(vocab_size, seed), trainer)
    missing = vocab_size - tokenizer.get_vocab_size()
    if missing > 0:  # the text ran out of merges: fill the table so every model id decodes
        tokenizer.add_special_tokens([f"<extra_{i}>" for i in range(missing)])
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>",
                                      unk_token="<unk>")
    wrapped.save_pretrained(str(folder))


def _training_text(vocab_size: int, seed: int) -> list[str]:
    """Seeded pseudo-words built from syllables: enough distinct pairs for ``vocab_size`` merges."""
    rng = random.Random(seed)
    consonants, vowels = "bcdfghjklmnprstvwz", "aeiou"
    syllables = [c + v + t for c in consonants for v in vowels for t in ("", "n", "r", "s")]
    words = ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(vocab_size * 4)]
    n_lines = max(200, vocab_size * 2)
    return [" ".join(rng.choices(words, k=12)) + rng.choice(".,!?") for _ in range(n_lines)]
