"""Speed measurements of a bundle: naive recompute vs cached incremental sampling, batching, RTF.

Figures are rates of whole sampling loops (logits → draw → next input), not of isolated layers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from . import fastpath
from .bundle import Bundle
from .sampling import Progress, pick, sample_sequence
from .wavenet import WaveNet


@dataclass(frozen=True)
class BenchResult:
    label: str
    value: float
    unit: str


def reference_decoder() -> WaveNet:
    """The issue's yardstick: R32/S128, 20 layers (two cycles of 10), 256 classes, random weights."""
    torch.manual_seed(0)
    return WaveNet(classes=256, residual=32, skip=128, layers=20, cycle=10, cond_channels=16,
                   cond_hop=8).eval()


def flops_per_step(net: WaveNet) -> int:
    """Multiply-adds × 2 of one incremental step: gate, past tap, residual, skip, output head."""
    r, layers = net.residual, len(net.layers)
    skip, hidden, classes = net.head1.in_channels, net.head1.out_channels, net.head2.out_channels
    per_layer = 2 * r * 2 * r * 2 + 2 * r * r
    return layers * per_layer + 2 * layers * r * skip + 2 * skip * hidden + 2 * hidden * classes


def _conditioning(net: WaveNet, steps: int, batch: int) -> torch.Tensor | None:
    if net.cond_proj is None:
        return None
    gen = torch.Generator().manual_seed(0)
    return torch.randn(batch, net.cond_proj.in_channels, steps // net.cond_hop + 2, generator=gen)


@torch.inference_mode()
def naive_rate(net: WaveNet, steps: int) -> float:
    """Batch-1 samples/s recomputing the whole receptive field with the parallel forward per sample."""
    bias = net.gate_bias(_conditioning(net, steps, 1), None, 1)
    rf, hop = net.receptive_field, net.cond_hop
    x = torch.zeros(1, 0, dtype=torch.long)
    u = torch.rand(steps, 1, generator=torch.Generator().manual_seed(1))
    start = time.perf_counter()
    for t in range(steps):
        # the receptive field back from t, widened to start on a conditioning-frame boundary
        f0 = max(0, t - rf + 1) // hop
        full = torch.cat([x[:, f0 * hop : t], torch.zeros(1, 1, dtype=torch.long)], dim=1)
        centre = net.centres(full) if net.lpc_order else None  # its linear prediction, recomputed too
        logits = net.run(full, bias[:, :, f0:] if bias is not None else None, centre=centre)[:, :, -1]
        x = torch.cat([x, pick(logits, u[t], 1.0, 1.0).unsqueeze(1)], dim=1)
    return steps / (time.perf_counter() - start)


def cached_rate(net: WaveNet, steps: int, batch: int, sampler: str, threads: int = 1) -> float:
    """Total samples/s (steps × batch) of the ring-buffer incremental sampling loop."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        if sampler == "fast":  # compile outside the timing
            sample_sequence(net.incremental(batch, _conditioning(net, 8, batch)), 8,
                            np.random.default_rng(0), temperature=1.0, top_p=1.0, progress=Progress(8),
                            sampler=sampler)
        state = net.incremental(batch, _conditioning(net, steps, batch))
        state.biases.at(0)  # the first window of frame biases: conditioning, not the loop
        rng = np.random.default_rng(1)
        start = time.perf_counter()
        sample_sequence(state, steps, rng, temperature=1.0, top_p=1.0, progress=Progress(steps),
                        sampler=sampler)
        return steps * batch / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)


def matvec_gflops(rows: int = 512, cols: int = 512, reps: int = 4000) -> float:
    """One thread's single-precision matrix-vector rate (torch.mv), the yardstick for a batch-1 step."""
    w, x, y = torch.randn(rows, cols), torch.randn(cols), torch.empty(rows)
    return _one_thread_gflops(lambda: torch.mv(w, x, out=y), 2 * rows * cols, reps)


def matmul_gflops(n: int = 256, reps: int = 400) -> float:
    """One thread's single-precision n×n×n matrix product rate (torch.mm): the arithmetic peak in practice,
    the yardstick for a batched step, which reuses every weight it loads across the batch."""
    a, b, c = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
    return _one_thread_gflops(lambda: torch.mm(a, b, out=c), 2 * n ** 3, reps)


def _one_thread_gflops(op: Callable[[], object], flops: int, reps: int) -> float:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(max(reps // 20, 5)):
            op()
        start = time.perf_counter()
        for _ in range(reps):
            op()
        return flops * reps / (time.perf_counter() - start) / 1e9
    finally:
        torch.set_num_threads(before)


def real_time_factor(bundle: Bundle, seconds: float, sampler: str = "auto") -> float:
    """Wall time / audio time of ``Stack.sample`` through every level (< 1 is faster than real time)."""
    bundle.stack.sampler = sampler
    bundle.stack.sample(min(seconds, 0.05), seed=0)  # compiles the fast loop outside the timing
    start = time.perf_counter()
    bundle.stack.sample(seconds, seed=0)
    return (time.perf_counter() - start) / seconds


def describe(net: WaveNet) -> str:
    lpc = f" +LPC-{net.lpc_order}" if net.lpc_order else ""
    return f"R{net.residual}/S{net.head1.in_channels}/L{len(net.layers)}{lpc}"


def run(
    bundle: Bundle,
    *,
    naive_steps: int = 300,
    steps: int = 4000,
    seconds: float = 10.0,
    report: Callable[[BenchResult], None] = print,
) -> list[BenchResult]:
    """Every figure of the README's speed table, for the reference decoder and the bundle's bottom one."""
    results: list[BenchResult] = []

    def add(label: str, value: float, unit: str) -> None:
        results.append(BenchResult(label, value, unit))
        report(results[-1])

    limit, peak = matvec_gflops(), matmul_gflops()
    add("matrix-vector, torch.mv 512x512, 1 thread", limit, "GFLOP/s")
    add("matrix-matrix, torch.mm 256x256x256, 1 thread", peak, "GFLOP/s")
    nets = [("reference", reference_decoder()), ("bundle bottom", bundle.stack.levels[0].decoder)]
    samplers = ["torch", "numpy"] + (["fast"] if fastpath.AVAILABLE else [])
    for name, net in nets:
        what = f"{name} decoder {describe(net)}"
        naive = naive_rate(net, naive_steps)
        add(f"{what}, naive recompute, batch 1", naive, "samples/s")
        rates = {}
        for sampler in samplers:
            rates[sampler] = cached_rate(net, steps, 1, sampler)
            add(f"{what}, cached {sampler}, batch 1", rates[sampler], "samples/s")
        best = samplers[-1]
        add(f"{what}, cached {best} / naive", rates[best] / naive, "x")
        gflops = rates[best] * flops_per_step(net) / 1e9
        add(f"{what}, {best} batch 1 arithmetic", gflops, "GFLOP/s")
        add(f"{what}, {best} batch 1 / matrix-vector limit", gflops / limit, "x")
        for threads in (1, 2):
            rate = cached_rate(net, max(steps // 4, 1), 16, best, threads)
            add(f"{what}, {best} batch 16 total, {threads} thread(s)", rate, "samples/s")
            if threads == 1:
                gflops = rate * flops_per_step(net) / 1e9
                add(f"{what}, {best} batch 16 arithmetic, 1 thread", gflops, "GFLOP/s")
                add(f"{what}, {best} batch 16 / matrix-matrix peak", gflops / peak, "x")
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
