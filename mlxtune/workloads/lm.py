"""Language-model workloads: prompt processing and generation through mlx-lm, timed like mlx_lm.benchmark.

The prompt is random token ids (seeded) and generation never stops early at an end-of-sequence
token, so every run does the same work. The numbers are comparable with
``python -m mlx_lm.benchmark`` on the same model and sizes (see ``benchmarks/lm_accuracy.py``).

mlx-lm empties MLX's buffer cache itself during generation: ``generate_step`` calls
``mx.clear_cache()`` after each prefill chunk and every 256 generated tokens (the batch generator
does the same after prefill). That matters for a cache-limit sweep: with mlx-lm's clearing kept,
even an unlimited cache is emptied at those points, so large limits look less different from small
ones than they would in a loop that never clears; with it avoided, the cache limit alone decides
what is kept. :func:`mlx_lm_cache_clearing` switches it, and ``lm(..., mlx_cache_clearing=...)``
chooses per workload.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import importlib
import itertools
import os
import time
import types
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from mlxtune._mlx import mx
from mlxtune.record import Work, Workload

__all__ = ["DTYPES", "LM", "STEP_METRICS", "apply_dtype", "decode_steps", "lm", "lm_factory",
           "mlx_lm_cache_clearing",
           "step_statistics"]

#: Weight formats a grid can compare: floating types, and 4- or 8-bit affine quantization.
DTYPES = ("float32", "float16", "bfloat16", "q4", "q8")
CacheClearing = Literal["keep", "avoid"]
_CLEARING = ("keep", "avoid")
_QUANT_GROUP_SIZE = 64


class _ClearCacheGate(types.ModuleType):
    """Stands in for ``mlx.core`` inside ``mlx_lm.generate``: counts ``clear_cache`` requests and
    forwards them only when ``honour`` is set; every other name is the real module's."""

    def __init__(self, real: types.ModuleType, honour: bool) -> None:
        super().__init__(real.__name__)
        self._real = real
        self._honour = honour
        self.requests = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def clear_cache(self) -> None:
        self.requests += 1
        if self._honour:
            self._real.clear_cache()


@contextlib.contextmanager
def mlx_lm_cache_clearing(mode: CacheClearing = "keep") -> Iterator[_ClearCacheGate]:
    """Within the block, keep or avoid mlx-lm's own ``mx.clear_cache()`` calls during generation.

    Yields a gate whose ``requests`` counts the clears mlx-lm asked for. ``"avoid"`` swaps the
    ``mx`` that ``mlx_lm.generate`` refers to for a stand-in that skips ``clear_cache`` and passes
    everything else through, and puts the real one back on exit (also on errors and Ctrl-C).
    Nothing else in the process is touched, but a generation running in another thread at the same
    time would be affected too. The trade-off: ``"avoid"`` measures the cache limit on its own,
    which is what an app that sets the limit gets from a loop that does not clear; ``"keep"``
    measures mlx-lm exactly as it ships (and as ``mlx_lm.benchmark`` runs), where the periodic
    clears cost re-allocations and cap what any limit can keep.
    """
    _check_clearing(mode)
    generate = importlib.import_module("mlx_lm.generate")  # the package re-exports a function of that name
    original = generate.mx
    gate = _ClearCacheGate(original, honour=mode == "keep")
    generate.mx = gate
    try:
        yield gate
    finally:
        generate.mx = original


def apply_dtype(model: Any, dtype: str | None) -> Any:
    """Cast a model's floating weights to ``dtype``, or quantize them ("q4", "q8"), in place.

    Quantization is ``mlx.nn.quantize`` (affine, group size 64) on every layer whose input size
    the group divides, as mlx-lm's converter does. ``None`` leaves the model as loaded.
    """
    import mlx.nn as nn

    if dtype is None:
        return model
    _check_dtype(dtype)
    if dtype.startswith("q"):
        def quantizable(_path: str, module: Any) -> bool:
            return hasattr(module, "to_quantized") and module.weight.shape[-1] % _QUANT_GROUP_SIZE == 0

        nn.quantize(model, group_size=_QUANT_GROUP_SIZE, bits=int(dtype[1:]), class_predicate=quantizable)
    else:
        model.set_dtype(getattr(mx, dtype))
    mx.eval(model.parameters())
    return model


class LM(Workload):
    """Prompt processing plus generation of one model: a sweep workload (see :func:`lm`).

    ``setup()`` loads the model (once) and draws the prompt; calling the object runs one timed
    generation and returns a :class:`~mlxtune.record.Work` of generated tokens; ``teardown()``
    drops a model it loaded so the next grid point does not hold two.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        prompt_tokens: int = 512,
        gen_tokens: int = 128,
        batch: int = 1,
        *,
        mlx_cache_clearing: CacheClearing = "keep",
        dtype: str | None = None,
        prefill_step_size: int = 2048,
        vocab_size: int | None = None,
        seed: int = 0,
    ) -> None:
        for name, value in (("prompt_tokens", prompt_tokens), ("gen_tokens", gen_tokens), ("batch", batch),
                            ("prefill_step_size", prefill_step_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, not {value!r}")
        if prompt_tokens < 2 and batch > 1:
            raise ValueError("prompt_tokens must be >= 2 when batch > 1")
        _check_clearing(mlx_cache_clearing)
        if dtype is not None:
            _check_dtype(dtype)
        self.source = model
        self.tokenizer = tokenizer
        self.prompt_tokens = prompt_tokens
        self.gen_tokens = gen_tokens
        self.batch = batch
        self.mlx_cache_clearing = mlx_cache_clearing
        self.dtype = dtype
        self.prefill_step_size = prefill_step_size
        self.vocab_size = vocab_size
        self.seed = seed
        self.model: Any = None if _is_reference(model) else model
        self._converted = False
        self._prompt: Any = None
        self._generations = 0
        if batch > 1:  # mlx-lm's batch generator has no step of its own to switch limits between
            self.steps = None  # type: ignore[assignment]

    def setup(self) -> None:
        """Load the model through ``mlx_lm.load`` if given a path or id, apply ``dtype``, draw the prompt.

        A model passed in already loaded is the caller's: with a ``dtype``, a copy of it is converted,
        so the caller's model, and the next grid point's, stay as they were.
        """
        if self.model is None and _is_reference(self.source):
            from mlx_lm import load

            self.model, self.tokenizer, config = load(str(self.source), return_config=True)
            self.vocab_size = self.vocab_size or _config_vocab(config)
            self._converted = False
        if not self._converted:
            if self._converts_a_copy():
                self.model = copy.deepcopy(self.source)
            apply_dtype(self.model, self.dtype)
            self._converted = True
        if self._prompt is None:
            vocab = self.vocab_size or _model_vocab(self.model)
            key = mx.random.key(self.seed)
            self._prompt = mx.random.randint(0, vocab, (self._prompts(), self.prompt_tokens), key=key)
            mx.eval(self._prompt)

    def _prompts(self) -> int:
        """How many prompts a run uses: one per sequence of the batch."""
        return self.batch

    def _converts_a_copy(self) -> bool:
        return self.dtype is not None and not _is_reference(self.source)

    def teardown(self) -> None:
        """Drop a model this workload loaded or copied itself and return its memory."""
        self._prompt = None
        if _is_reference(self.source) or self._converts_a_copy():
            self.model = None
            self._converted = False
            gc.collect()
            mx.clear_cache()

    def __call__(self) -> Work:
        if self._prompt is None:
            self.setup()
        with mlx_lm_cache_clearing(self.mlx_cache_clearing) as gate:
            prompt_s, gen_s, generated, prompt_done, steps = (
                self._single() if self.batch == 1 else self._batched()
            )
        return Work(
            units=float(generated),
            unit="tokens",
            seconds=gen_s,
            metrics={
                "prompt_tps": prompt_done / prompt_s if prompt_s > 0 else float("nan"),
                "generation_tps": generated / gen_s if gen_s > 0 else float("nan"),
                "prompt_seconds": prompt_s,
                "mlx_lm_clears": float(gate.requests),
                **step_statistics(steps),
            },
        )

    #: What a step counts, for the paired design (:mod:`mlxtune.paired`).
    unit = "tokens"

    def steps(self) -> Iterator[float]:
        """One generation in steps, for the paired design: the same work as a run, the prompt and
        first token (a step of 0 units, never timed), then ``gen_tokens`` decoded tokens, one a step.
        Each generation has a fresh prompt (seeded by ``seed`` and its number). mlx-lm's cache
        clearing is kept or avoided as for a run."""
        from mlx_lm.generate import generate_step

        if self._prompt is None:
            self.setup()
        self._generations += 1
        key = mx.random.key(self.seed * 100_003 + self._generations)
        prompt = mx.random.randint(0, self.vocab_size or _model_vocab(self.model), (self.prompt_tokens,),
                                   key=key)
        with mlx_lm_cache_clearing(self.mlx_cache_clearing):
            yield from decode_steps(generate_step(prompt, self.model, max_tokens=self.gen_tokens + 1,
                                                  prefill_step_size=self.prefill_step_size))

    def _single(self) -> tuple[float, float, int, int, list[float]]:
        """One sequence through ``generate_step``.

        The first token comes out of prompt processing, so it counts with the prompt (time to first
        token, as mlx-lm counts it); then ``gen_tokens`` more are decoded and timed, each step on
        its own (``generate_step`` hands a token over only once it is computed).
        """
        from mlx_lm.generate import generate_step

        stamps = [time.perf_counter()]
        for _ in generate_step(self._prompt[0], self.model, max_tokens=self.gen_tokens + 1,
                               prefill_step_size=self.prefill_step_size):
            stamps.append(time.perf_counter())
        steps = [b - a for a, b in itertools.pairwise(stamps[1:])]
        return stamps[1] - stamps[0], stamps[-1] - stamps[1], self.gen_tokens, self.prompt_tokens, steps

    def _batched(self) -> tuple[float, float, int, int, list[float]]:
        """``batch`` sequences through mlx-lm's ``BatchGenerator``, with its own prompt/generation timing;
        the steps are the times between the generator's batches of tokens after the first."""
        from mlx_lm.generate import BatchGenerator

        generator = BatchGenerator(self.model, stop_tokens=[], prefill_step_size=self.prefill_step_size,
                                   completion_batch_size=self.batch, prefill_batch_size=self.batch)
        stamps: list[float] = []
        try:
            generator.insert(self._prompt.tolist(), [self.gen_tokens] * self.batch)
            with generator.stats() as stats:
                while generator.next_generated():
                    stamps.append(time.perf_counter())
        finally:
            generator.close()
        steps = [b - a for a, b in itertools.pairwise(stamps)]
        return stats.prompt_time, stats.generation_time, stats.generation_tokens, stats.prompt_tokens, steps

    def _name(self) -> str:
        """The model's folder name, or its class when it was passed in loaded."""
        return Path(str(self.source)).name if _is_reference(self.source) else type(self.source).__name__

    def describe(self) -> str:
        return (
            f"lm({self._name()}, dtype={self.dtype or 'as saved'}, prompt={self.prompt_tokens}, "
            f"gen={self.gen_tokens}, batch={self.batch}, mlx-lm cache clearing: {self.mlx_cache_clearing})"
        )


def decode_steps(tokens: Iterator[Any]) -> Iterator[float]:
    """mlx-lm's tokens as steps: the first comes out of the prompt (0 units: never timed), then one
    unit a decoded token."""
    for position, _ in enumerate(tokens):
        yield 0.0 if position == 0 else 1.0


def step_statistics(steps: list[float]) -> dict[str, float]:
    """A run's decode steps in a few numbers (seconds): median, 10th and 90th percentile, fastest, slowest.

    A run's speed state shows here: a machine that turns slow for a whole run moves the median,
    while a one-off stall moves only the slowest step. NaN when no step was timed.
    """
    import numpy as np

    if not steps:
        return {name: float("nan") for name in STEP_METRICS}
    values = np.asarray(steps, dtype=float)
    low, median, high = np.percentile(values, [10, 50, 90])
    return dict(zip(STEP_METRICS, (float(median), float(low), float(high), float(values.min()),
                                   float(values.max())), strict=True))


#: The per-run decode step statistics an lm workload reports, in seconds.
STEP_METRICS = ("step_median_s", "step_p10_s", "step_p90_s", "step_min_s", "step_max_s")


def lm(
    model: Any,
    tokenizer: Any = None,
    prompt_tokens: int = 512,
    gen_tokens: int = 128,
    batch: int = 1,
    **options: Any,
) -> LM:
    """A workload timing prompt processing and generation of ``model`` (a path, hub id or loaded model).

    Each run processes ``prompt_tokens`` random tokens and decodes ``gen_tokens`` more with no
    early stop; it returns the decoded tokens, timed without the prompt, and adds ``prompt_tps``,
    ``generation_tps``, ``prompt_seconds``, ``mlx_lm_clears`` (cache clears mlx-lm requested) and
    the decode steps' statistics (:data:`STEP_METRICS`) as columns. Options: ``mlx_cache_clearing``
    ("keep", mlx-lm as shipped, or "avoid"; see :func:`mlx_lm_cache_clearing`), ``dtype`` (one of
    :data:`DTYPES`), ``prefill_step_size``, ``vocab_size`` (for a loaded model without
    ``args.vocab_size``) and ``seed``.
    """
    return LM(model, tokenizer, prompt_tokens, gen_tokens, batch, **options)


def lm_factory(model: str | os.PathLike[str], **defaults: Any) -> Callable[..., LM]:
    """A grid workload factory: ``factory({"dtype": "q4"})`` or ``factory(dtype="q4")`` -> :class:`LM`.

    ``sweep`` calls it with one grid point (a dict of axis values); keyword arguments work too.
    Every grid point loads the model afresh in its own ``setup()``, so float32, float16, bfloat16
    and quantized variants of one model folder can be compared in a single sweep.
    """
    def factory(point: Mapping[str, Any] | None = None, /, **options: Any) -> LM:
        return LM(model, **{**defaults, **(point or {}), **options})

    factory.__name__ = factory.__qualname__ = f"lm_factory({Path(str(model)).name})"
    return factory


def _check_clearing(mode: str) -> None:
    if mode not in _CLEARING:
        raise ValueError(f"unknown mlx_cache_clearing {mode!r}: expected 'keep' or 'avoid'")


def _check_dtype(dtype: str) -> None:
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}: expected one of {', '.join(DTYPES)}")


def _is_reference(model: Any) -> bool:
    return isinstance(model, (str, os.PathLike))


def _config_vocab(config: dict[str, Any]) -> int | None:
    return config.get("vocab_size") or (config.get("text_config") or {}).get("vocab_size")


def _model_vocab(model: Any) -> int:
    vocab = getattr(getattr(model, "args", None), "vocab_size", None)
    if not vocab:
        raise ValueError("cannot tell the model's vocabulary size: pass vocab_size=")
    return int(vocab)
