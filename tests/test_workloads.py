"""Workloads on real MLX (CPU): model folders, mlx-lm generation timing, dtypes, allocator churn."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import mlx.core as mx
import pytest
from mlx.utils import tree_flatten

from mlxtune import measure, memory
from mlxtune.workloads import (
    DTYPES,
    allocator_churn,
    apply_dtype,
    lm,
    lm_factory,
    mlx_lm_cache_clearing,
    model_config,
    tiny_model,
)


def test_tiny_model_is_a_model_folder_mlx_lm_loads(tiny_model_path: Path) -> None:
    from mlx_lm import load

    names = {p.name for p in tiny_model_path.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    config = json.loads((tiny_model_path / "config.json").read_text())
    assert config["model_type"] == "llama"
    facts = json.loads((tiny_model_path / "mlxtune-model.json").read_text())
    assert 10_000 < facts["parameters"] < 200_000
    model, tokenizer = load(str(tiny_model_path))
    assert len(tokenizer.get_vocab()) == config["vocab_size"]
    text = "hello world, a tiny model"
    ids = tokenizer.encode(text)
    assert 0 < len(ids) < len(text)  # merges were learned
    assert tokenizer.decode(ids) == text
    logits = model(mx.array([ids]))
    assert logits.shape == (1, len(ids), config["vocab_size"])


def test_tiny_model_is_reused_and_keyed_by_its_config(tiny_model_path: Path) -> None:
    before = (tiny_model_path / "model.safetensors").stat().st_mtime_ns
    assert tiny_model(size="tiny") == tiny_model_path
    assert (tiny_model_path / "model.safetensors").stat().st_mtime_ns == before
    assert tiny_model(size="tiny", seed=1) != tiny_model_path
    assert not [p for p in tiny_model_path.parent.iterdir() if p.name.startswith(".")]  # no staging left


def test_tiny_model_refuses_a_foreign_folder_and_bad_sizes(tmp_path: Path) -> None:
    (tmp_path / "stray.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not a complete model folder"):
        tiny_model(tmp_path, size="tiny")
    with pytest.raises(ValueError, match="unknown model size 'huge'"):
        model_config("huge")
    assert model_config("1b", dtype="bfloat16")["torch_dtype"] == "bfloat16"


def test_lm_times_generation_like_mlx_lm(tiny_model_path: Path) -> None:
    work = lm(str(tiny_model_path), prompt_tokens=16, gen_tokens=8)
    work.setup()
    done = work()
    assert done.unit == "tokens" and done.units == 8
    assert done.seconds is not None and 0 < done.seconds < 10
    assert 1 < done.metrics["generation_tps"] < 1e6
    assert done.metrics["generation_tps"] == pytest.approx(8 / done.seconds)
    assert done.metrics["prompt_tps"] > 1
    assert "tiny" in work.describe() and "keep" in work.describe()
    work.teardown()
    assert work.model is None


@pytest.mark.parametrize(("mode", "reaching_mlx"), [("keep", 2), ("avoid", 0)])
def test_mlx_lm_cache_clearing_is_kept_or_avoided(tiny_model_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  mode: str, reaching_mlx: int) -> None:
    """Count the clears that reach mlx.core during a real run: one after the prefill, one at token 0."""
    import mlx_lm.generate  # noqa: F401 - the gate replaces this module's `mx`
    real_clear = mx.clear_cache
    calls = []

    def counting_clear() -> None:
        calls.append(1)
        real_clear()

    work = lm(str(tiny_model_path), prompt_tokens=16, gen_tokens=4, mlx_cache_clearing=mode)
    work.setup()
    monkeypatch.setattr(mx, "clear_cache", counting_clear)
    done = work()
    monkeypatch.undo()
    assert done.metrics["mlx_lm_clears"] == 2  # what mlx-lm asked for, either way
    assert len(calls) == reaching_mlx
    assert sys.modules["mlx_lm.generate"].mx is mx  # restored


def test_cache_clearing_gate_restores_on_error() -> None:
    with pytest.raises(RuntimeError), mlx_lm_cache_clearing("avoid") as gate:
        gate.clear_cache()
        raise RuntimeError("boom")
    assert sys.modules["mlx_lm.generate"].mx is mx
    with pytest.raises(ValueError, match="expected 'keep' or 'avoid'"):
        lm("x", mlx_cache_clearing="sometimes")


def test_lm_rejects_bad_sizes_with_one_message() -> None:
    with pytest.raises(ValueError, match="gen_tokens must be a whole number >= 1"):
        lm("x", gen_tokens=0)
    with pytest.raises(ValueError, match="unknown dtype 'int3'"):
        lm("x", dtype="int3")


def test_lm_batches_through_the_batch_generator(tiny_model_path: Path) -> None:
    work = lm(str(tiny_model_path), prompt_tokens=8, gen_tokens=4, batch=2)
    done = work()
    assert done.units == 8  # 2 sequences x 4 tokens
    assert done.metrics["generation_tps"] > 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_loads_and_runs(tiny_model_path: Path, dtype: str) -> None:
    factory = lm_factory(str(tiny_model_path), prompt_tokens=8, gen_tokens=4)
    work = factory({"dtype": dtype})  # as sweep() calls a factory: one grid point
    done = work()
    assert done.units == 4 and done.seconds and done.seconds > 0
    leaves = [v for _, v in tree_flatten(work.model.parameters())]
    if dtype.startswith("q"):
        assert any(v.dtype == mx.uint32 for v in leaves)  # packed quantized weights
    else:
        assert {v.dtype for v in leaves} == {getattr(mx, dtype)}


def test_quantized_weights_are_smaller(tiny_model_path: Path) -> None:
    from mlx_lm import load

    sizes = {}
    for dtype in ("float16", "q4"):
        model, _ = load(str(tiny_model_path))
        apply_dtype(model, dtype)
        sizes[dtype] = sum(v.nbytes for _, v in tree_flatten(model.parameters()))
    assert sizes["q4"] < 0.6 * sizes["float16"]


def test_allocator_churn_allocates_and_is_seeded() -> None:
    work = allocator_churn(buffers=50, min_size="1KB", max_size="1MB", seed=3)
    assert work.lengths == allocator_churn(buffers=50, min_size="1KB", max_size="1MB", seed=3).lengths
    assert work.lengths != allocator_churn(buffers=50, min_size="1KB", max_size="1MB", seed=4).lengths
    run = measure.measure(work).record
    assert run.error == ""
    assert run.units == 50 and run.unit == "buffers"
    assert run.peak_memory >= max(work.lengths) * 4
    assert not math.isnan(run.throughput)
    assert len(set(work.lengths)) <= work.distinct


def test_allocator_churn_reuses_cached_buffers() -> None:
    """With a cache the recurring sizes are served from it: the cache holds buffers at the end."""
    work = allocator_churn(buffers=100, max_size="256KB", distinct=4)
    with memory.cache_limit("unlimited"):
        cached = measure.measure(work).record
    with memory.cache_limit(0):
        uncached = measure.measure(work).record
    assert cached.cache_after > 0
    assert uncached.cache_after == 0


def test_allocator_churn_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="min_size <= max_size"):
        allocator_churn(min_size="2MB", max_size="1MB")
    with pytest.raises(ValueError, match="buffers must be"):
        allocator_churn(buffers=0)


def test_lm_takes_a_loaded_model_and_converts_a_copy_of_it(tiny_model_path: Path) -> None:
    from mlx_lm import load

    model, tokenizer = load(str(tiny_model_path))
    plain = lm(model, tokenizer, prompt_tokens=8, gen_tokens=4)
    assert plain().units == 4
    plain.teardown()
    assert plain.model is model  # not ours to drop
    work = lm(model, tokenizer, prompt_tokens=8, gen_tokens=4, dtype="q8")
    assert work().units == 4
    assert type(work.model.layers[0].mlp.gate_proj).__name__ == "QuantizedLinear"
    work.teardown()
    work.setup()
    assert work().units == 4
    assert "Model" in work.describe()


def test_a_dtype_grid_over_one_loaded_model_runs_each_point_on_its_own_weights(tiny_model_path: Path) -> None:
    """The q4 point quantizes a copy: the float32 point after it, and the caller, keep float32 weights."""
    from mlx_lm import load

    from mlxtune.sweep import sweep

    model, tokenizer = load(str(tiny_model_path))
    made: list[Any] = []
    ran_on: dict[str, str] = {}

    def factory(point: dict[str, Any]) -> Any:
        made.append(lm(model, tokenizer, prompt_tokens=8, gen_tokens=4, dtype=point["dtype"]))
        return made[-1]

    def on_run(record: Any, progress: Any) -> None:  # the layer type each point's run used
        ran_on[record.params["dtype"]] = type(made[-1].model.layers[0].mlp.gate_proj).__name__

    sweep(factory, cache_limits=["0"], grid={"dtype": ["q4", "float32"]}, repeats=1, design="runs",
          progress=False, on_run=on_run)
    assert ran_on == {"q4": "QuantizedLinear", "float32": "Linear"}
    assert type(model.layers[0].mlp.gate_proj).__name__ == "Linear"  # the caller's model is untouched
