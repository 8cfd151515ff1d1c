"""What sampling memory during a run costs: the lm workload with the sampler at 1 ms and without it.

    python benchmarks/sampler_cost.py

The small random-weight model decodes 64 tokens after a 64-token prompt; the two settings alternate
run by run (in a shuffled order each round, 30 rounds) so the machine's drift hits both alike. It
prints the ratio of throughputs, sampled over unsampled, with its 95% interval (Hodges-Lehmann,
``mlxtune.stats.ratio_ci``; goal: the cost under 1%, i.e. the ratio above 0.99), and checks that every
sampled run's peak footprint is at least MLX's peak active memory. Writes
benchmarks/results/sampler_cost.txt.
"""

from __future__ import annotations

import random

from _common import publish

from mlxtune import lm, tiny_model
from mlxtune.measure import measure
from mlxtune.stats import ratio_ci

ROUNDS = 30
INTERVAL = 0.001


def main() -> None:
    work = lm(str(tiny_model(size="small")), prompt_tokens=64, gen_tokens=64)
    work.setup()
    for _ in range(2):  # warm-up: compilation, first touches of the weights
        work()
    speeds: dict[float | None, list[float]] = {None: [], INTERVAL: []}
    samples, below = [], 0
    order = random.Random(0)
    for _ in range(ROUNDS):
        settings = [None, INTERVAL]
        order.shuffle(settings)
        for interval in settings:
            record = measure(work, sample_interval=interval).record
            speeds[interval].append(record.throughput)
            if interval:
                samples.append(len(record.samples or ()))
                below += record.footprint_peak < record.peak_memory
    ratio, low, high = ratio_ci(speeds[INTERVAL], speeds[None])
    lines = [
        f"lm workload (small model, prompt 64, decode 64), {ROUNDS} runs each, interleaved; sampler every "
        f"{INTERVAL * 1000:g} ms, about {sum(samples) / len(samples):.0f} samples a run",
        f"throughput with the sampler / without: {ratio:.4f} (95% CI {low:.4f} .. {high:.4f}); "
        f"cost {1 - ratio:+.2%} (goal: under 1%)",
        f"runs whose recorded peak footprint is below MLX's peak active memory: {below} of {ROUNDS}",
    ]
    publish("sampler_cost.txt", "\n".join(lines))


if __name__ == "__main__":
    main()
