"""Speed measurements of a bundle: naive recompute vs cached incremental sampling, batching, RTF.

Figures are rates of whole sampling loops (logits → draw → next input), not of isolated layers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .bundle import Bundle
from .sampling import Progress, pick, sample_sequence


@dataclass(frozen=True)
class BenchResult:
    label: str
    value: float
    unit: str


def _bottom_decoder_inputs(bundle: Bundle, steps: int, batch: int):
    level = bundle.stack.levels[0]
    gen = torch.Generator().manual_seed(0)
    frames = steps // level.hop + 2
    codes = torch.randint(0, level.num_codes, (batch, frames), generator=gen)
    return level.decoder, level.condition(codes)


@torch.inference_mode()
def naive_rate(bundle: Bundle, steps: int) -> float:
    """Batch-1 samples/s recomputing the whole receptive field with the parallel forward per sample."""
    net, cond = _bottom_decoder_inputs(bundle, steps, 1)
    bias = net.gate_bias(cond, None, 1)
    rf, hop = net.receptive_field, net.cond_hop
    x = torch.zeros(1, 0, dtype=torch.long)
    u = torch.rand(steps, 1, generator=torch.Generator().manual_seed(1))
    start = time.perf_counter()
    for t in range(steps):
        # the receptive field back from t, widened to start on a conditioning-frame boundary
        f0 = max(0, t - rf + 1) // hop
        full = torch.cat([x[:, f0 * hop : t], torch.zeros(1, 1, dtype=torch.long)], dim=1)
        logits = net.run(full, bias[:, :, f0:])[:, :, -1]
        x = torch.cat([x, pick(logits, u[t], 1.0, 1.0).unsqueeze(1)], dim=1)
    return steps / (time.perf_counter() - start)


def cached_rate(bundle: Bundle, steps: int, batch: int, sampler: str = "auto") -> float:
    """Total samples/s (steps × batch) of the ring-buffer incremental sampling loop."""
    net, cond = _bottom_decoder_inputs(bundle, steps, batch)
    state = net.incremental(batch, cond=cond)
    rng = np.random.default_rng(1)
    start = time.perf_counter()
    sample_sequence(state, steps, rng, temperature=1.0, top_p=1.0, progress=Progress(steps),
                    sampler=sampler)
    return steps * batch / (time.perf_counter() - start)


def real_time_factor(bundle: Bundle, seconds: float) -> float:
    """Wall time / audio time of ``Stack.sample`` through every level (< 1 is faster than real time)."""
    start = time.perf_counter()
    bundle.stack.sample(seconds, seed=0)
    return (time.perf_counter() - start) / seconds


def run(
    bundle: Bundle,
    *,
    naive_steps: int = 300,
    steps: int = 4000,
    seconds: float = 4.0,
    report: Callable[[BenchResult], None] = print,
) -> list[BenchResult]:
    results: list[BenchResult] = []

    def add(label: str, value: float, unit: str) -> None:
        results.append(BenchResult(label, value, unit))
        report(results[-1])

    naive = naive_rate(bundle, naive_steps)
    add("bottom decoder, naive recompute, batch 1", naive, "samples/s")
    eager = cached_rate(bundle, steps, 1, "torch")
    add("bottom decoder, cached incremental (torch ops), batch 1", eager, "samples/s")
    b1 = cached_rate(bundle, steps, 1, "numpy")
    add("bottom decoder, cached incremental (numpy ops), batch 1", b1, "samples/s")
    add("cached (numpy) / naive", b1 / naive, "x")
    b16 = cached_rate(bundle, steps, 16, "numpy")
    add("bottom decoder, cached incremental (numpy ops), batch 16 total", b16, "samples/s")
    add("batch 16 / batch 1 throughput", b16 / b1, "x")
    add(f"generate --seconds {seconds:g}, all levels, real-time factor",
        real_time_factor(bundle, seconds), "x")
    return results


def machine() -> str:
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, torch {torch.__version__}, {torch.get_num_threads()} thread(s), numpy {np.__version__}"
