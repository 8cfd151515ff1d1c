"""A multi-turn chat through mlx-lm: the case where a cache limit matters most for an app.

Each run is one conversation: ``turns`` user messages of ``prompt_tokens`` random tokens (seeded,
the same every run), each answered with ``tokens_per_turn`` tokens, all in one mlx-lm prompt cache,
so the KV cache grows turn after turn as in a chat app. Memory is read after every turn: what a
chat app holds between messages (MLX's active + cache memory), the number that grew from 2.6 GB to
6.0 GB over five turns in an app that jetsam then killed until its cache limit was set to 20 MB.
The run's timeline (:mod:`mlxtune.sampler`) shows the movement inside each turn.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

from mlxtune import memory
from mlxtune.record import Work
from mlxtune.workloads.lm import LM, decode_steps, mlx_lm_cache_clearing, step_statistics

__all__ = ["Chat", "chat"]


class Chat(LM):
    """A conversation of ``turns`` turns in one prompt cache (see :func:`chat`)."""

    def __init__(self, model: Any, tokenizer: Any = None, turns: int = 5, tokens_per_turn: int = 64,
                 prompt_tokens: int = 64, **options: Any) -> None:
        if isinstance(turns, bool) or not isinstance(turns, int) or turns < 1:
            raise ValueError(f"turns must be a whole number >= 1, not {turns!r}")
        if options.get("batch", 1) != 1:
            raise ValueError(f"a chat holds one conversation: batch must be 1, not {options['batch']!r}")
        self.turns = turns
        super().__init__(model, tokenizer, prompt_tokens=prompt_tokens, gen_tokens=tokens_per_turn, **options)

    def _prompts(self) -> int:
        """One message per turn."""
        return self.turns

    def __call__(self) -> Work:
        from mlx_lm.generate import generate_step
        from mlx_lm.models.cache import make_prompt_cache

        if self._prompt is None:
            self.setup()
        conversation = make_prompt_cache(self.model)
        metrics: dict[str, float] = {}
        decoding, steps = 0.0, []
        with mlx_lm_cache_clearing(self.mlx_cache_clearing) as gate:
            for turn in range(self.turns):
                stamps = [time.perf_counter()]
                answer = generate_step(self._prompt[turn], self.model, prompt_cache=conversation,
                                       max_tokens=self.gen_tokens + 1,
                                       prefill_step_size=self.prefill_step_size)
                for _ in answer:
                    stamps.append(time.perf_counter())
                seconds = stamps[-1] - stamps[1]
                decoding += seconds
                steps += [b - a for a, b in itertools.pairwise(stamps[1:])]
                memory.settle()
                active, cache = memory.counters()
                metrics[f"turn{turn + 1}_tps"] = self.gen_tokens / seconds if seconds > 0 else float("nan")
                metrics[f"turn{turn + 1}_memory"] = float(active + cache)
        metrics["mlx_lm_clears"] = float(gate.requests)
        return Work(units=float(self.turns * self.gen_tokens), unit="tokens", seconds=decoding,
                    metrics={**metrics, **step_statistics(steps)})

    def steps(self) -> Iterator[float]:
        """One conversation in steps, for the paired design: each turn's prompt and first token is a
        step of 0 units (not timed), then one decoded token per step; the conversation ends after its
        turns and the sweep starts the next one."""
        from mlx_lm.generate import generate_step
        from mlx_lm.models.cache import make_prompt_cache

        if self._prompt is None:
            self.setup()
        conversation = make_prompt_cache(self.model)
        with mlx_lm_cache_clearing(self.mlx_cache_clearing):
            for turn in range(self.turns):
                answer = generate_step(self._prompt[turn], self.model, prompt_cache=conversation,
                                       max_tokens=self.gen_tokens + 1,
                                       prefill_step_size=self.prefill_step_size)
                yield from decode_steps(answer)

    def describe(self) -> str:
        return (f"chat({self._name()}, dtype={self.dtype or 'as saved'}, turns={self.turns}, "
                f"prompt={self.prompt_tokens}/turn, gen={self.gen_tokens}/turn, "
                f"mlx-lm cache clearing: {self.mlx_cache_clearing})")


def chat(model: Any, tokenizer: Any = None, turns: int = 5, tokens_per_turn: int = 64,
         prompt_tokens: int = 64, **options: Any) -> Chat:
    """A workload: one multi-turn conversation per run, with a growing KV cache (mlx-lm's prompt cache).

    Each run returns the tokens generated over all turns, timed without the prompts, and adds per-turn
    columns: ``turn<N>_tps`` (tokens/s of that turn's answer) and ``turn<N>_memory`` (MLX's active +
    cache memory after the turn, bytes), plus the decode steps' statistics. Options as for
    :func:`mlxtune.workloads.lm` (``mlx_cache_clearing``, ``dtype``, ``seed``, ...).
    """
    return Chat(model, tokenizer, turns=turns, tokens_per_turn=tokens_per_turn,
                prompt_tokens=prompt_tokens, **options)
