"""Autoregressive sampling loop: temperature, top-p, a seeded uniform stream, progress and cancel.

Every random draw comes from a numpy PCG64 stream of uniforms consumed one per element by inverse-
CDF sampling, so any sampler that consumes the same stream the same way gives the same classes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from . import fastpath
from .errors import Cancelled
from .npstep import NumpyStepper
from .wavenet import IncrementalState

ProgressFn = Callable[[float], None]
CancelFn = Callable[[], bool]

_CHUNK = 4096  # uniforms drawn from the stream at a time
_FAST_CHUNK = 1024  # steps per call of the compiled loop (progress and cancel are checked between)
_NUMPY_BLOCK = 64  # steps per call of the numpy stepper
SAMPLERS = ("auto", "torch", "numpy", "fast")


class Progress:
    """Counts work units; reports the fraction done and polls cancellation every ``interval`` s."""

    def __init__(
        self,
        total: int,
        callback: ProgressFn | None = None,
        should_cancel: CancelFn | None = None,
        *,
        interval: float = 0.03,
    ) -> None:
        self.total, self.done = max(int(total), 1), 0
        self.callback, self.should_cancel, self.interval = callback, should_cancel, interval
        self._last = time.monotonic()
        self.check()

    def check(self) -> None:
        if self.should_cancel is not None and self.should_cancel():
            raise Cancelled("generation cancelled")
        if self.callback is not None:
            self.callback(min(self.done / self.total, 1.0))

    def advance(self, units: int = 1) -> None:
        self.done += units
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self.check()

    def finish(self) -> None:
        self.done = self.total
        if self.callback is not None:
            self.callback(1.0)


def pick(logits: torch.Tensor, u: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """Inverse-CDF draw from softmax(logits / T) restricted to the top-p nucleus; u in [0, 1)."""
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        probs, order = probs.sort(dim=-1, descending=True)
        cum = probs.cumsum(dim=-1)
        probs = probs * ((cum - probs) < top_p)  # smallest prefix whose mass reaches top_p
    cdf = probs.cumsum(dim=-1)
    target = (u * cdf[:, -1]).unsqueeze(1)
    k = torch.searchsorted(cdf, target, right=True).clamp_(max=probs.shape[-1] - 1).squeeze(1)
    if top_p < 1.0:
        k = order.gather(1, k.unsqueeze(1)).squeeze(1)
    return k


Rng = np.random.Generator | Sequence[np.random.Generator]


def uniforms(rng: Rng, n: int, batch: int) -> np.ndarray:
    """The next ``n`` uniforms (n, batch) of the seeded stream: one generator shared by the rows, or
    one generator per row, so that each row draws exactly what it would draw alone."""
    if isinstance(rng, np.random.Generator):
        return rng.random((n, batch), dtype=np.float32)
    if len(rng) != batch:
        raise ValueError(f"{len(rng)} generators for {batch} rows")
    return np.stack([g.random(n, dtype=np.float32) for g in rng], axis=1)


def sample_sequence(
    state: IncrementalState,
    length: int,
    rng: Rng,
    *,
    temperature: float,
    top_p: float,
    progress: Progress,
    prev: torch.Tensor | None = None,
    cost: int = 1,
    sampler: str = "auto",
    loud: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Generate ``length`` classes (B, length) continuing ``state``; ``prev`` is the last known one.

    Each step counts ``cost`` units of ``progress`` (the net's layer count, so levels weigh fairly).
    ``sampler``: ``fast`` (CPU, compiled loop, needs numba), ``numpy`` (CPU), ``torch`` (any
    device, batched on the GPU), ``auto``: fast on CPU when numba is there, else numpy on CPU, torch
    on a GPU. All consume the uniform stream identically. ``loud`` (temperature, top-p): the draw
    of the rows the state's loudness gate marks loud (``IncrementalState.loud_rows``).
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    on_cpu = state.embed.device.type == "cpu"
    if sampler == "auto":
        sampler = ("fast" if fastpath.AVAILABLE else "numpy") if on_cpu else "torch"
        if state.net.lpc_centre == "logistic":  # an experimental decoder only the torch path runs
            sampler = "torch"
    if sampler in ("fast", "numpy"):
        stepper, block = (fastpath.FastStepper(state), _FAST_CHUNK) if sampler == "fast" else \
            (NumpyStepper(state), _NUMPY_BLOCK)
        return _sample_blocks(stepper, block, state, length, rng, (temperature, top_p, loud), progress, prev,
                              cost)
    out = torch.empty(state.batch, length, dtype=torch.long, device=state.embed.device)
    with torch.inference_mode():
        for start in range(0, length, _CHUNK):
            n = min(_CHUNK, length - start)
            u = torch.from_numpy(uniforms(rng, n, state.batch)).to(state.embed.device)
            for i in range(n):
                logits = state.step(prev)
                prev = pick(logits, u[i], temperature, top_p)
                rows = state.loud_rows()
                if loud is not None and rows is not None and rows.any():
                    mask = torch.from_numpy(rows).to(prev.device)
                    prev = torch.where(mask, pick(logits, u[i], *loud), prev)
                out[:, start + i] = prev
                progress.advance(cost)
    return out.cpu().clone()  # a normal CPU tensor again, usable outside inference mode


def _sample_blocks(stepper, block, state, length, rng, draw, progress, prev, cost):
    """Draw ``length`` steps from a CPU stepper, ``block`` steps per call (progress between calls)."""
    last = None if prev is None else prev.numpy()
    out = np.empty((state.batch, length), dtype=np.int64)
    for start in range(0, length, _CHUNK):
        n = min(_CHUNK, length - start)
        u = uniforms(rng, n, state.batch)
        for s in range(0, n, block):
            m = min(block, n - s)
            classes = stepper.run(last, u[s:s + m], *draw)
            out[:, start + s:start + s + m] = classes
            last = classes[:, -1]
            progress.advance(cost * m)
    return torch.from_numpy(out)
