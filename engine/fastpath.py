"""The fast sampler: one compiled loop (numba) runs many generation steps with no interpreter in between.

Same weights and ring-buffer semantics as ``IncrementalState`` (it reads that state's prepared
weights, frame biases and buffers, and writes the buffers back after each chunk, so the torch,
numpy and fast paths are interchangeable mid-sequence), and the same draw as ``sampling.pick``:
inverse CDF of the tempered top-p nucleus on the shared seeded uniform stream. Batch rows are
independent sequences, so they run in parallel threads for a whole chunk without synchronising.

tanh is a rational minimax approximation (|error| < 4e-7 on float32), which the compiler can
vectorise; a libm call per gate unit would cost more than the matrix-vector work.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import torch

try:
    import numba
    from numba import njit, prange
except ImportError:  # the numpy path stays available
    numba = None

from .wavenet import IncrementalState

AVAILABLE = numba is not None
_TANH_CLAMP = np.float32(7.90531110763549805)
_A = tuple(np.float32(v) for v in (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05,
                                   5.12229709037114e-08, -8.60467152213735e-11, 2.00018790482477e-13,
                                   -2.76076847742355e-16))
_B = tuple(np.float32(v) for v in (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04,
                                   1.19825839466702e-06))


def _tanh(x):
    x = min(max(x, -_TANH_CLAMP), _TANH_CLAMP)
    x2 = x * x
    p = ((((((_A[6] * x2 + _A[5]) * x2 + _A[4]) * x2 + _A[3]) * x2 + _A[2]) * x2 + _A[1]) * x2 + _A[0]) * x
    q = ((_B[3] * x2 + _B[2]) * x2 + _B[1]) * x2 + _B[0]
    return p / q


def _pick(logits, u, temperature, top_p, probs, cdf):
    """``sampling.pick`` for one row: float32 throughout, stable order for the nucleus."""
    k_max = logits.shape[0]
    for k in range(k_max):
        probs[k] = logits[k] / temperature
    m = probs[0]
    for k in range(1, k_max):
        m = max(m, probs[k])
    for k in range(k_max):
        probs[k] = np.float32(math.exp(probs[k] - m))
    if top_p >= 1.0:
        return _invert(probs, cdf, u)
    total = np.float32(0.0)
    for k in range(k_max):
        total += probs[k]
    for k in range(k_max):
        probs[k] /= total
    order = np.argsort(-probs, kind="mergesort")
    sorted_p = probs[order]
    cum = np.float32(0.0)
    for k in range(k_max):
        cum += sorted_p[k]
        probs[k] = sorted_p[k] if cum - sorted_p[k] < top_p else np.float32(0.0)
    return order[_invert(probs, cdf, u)]


def _invert(probs, cdf, u):
    """The class whose cumulative (unnormalised) mass first exceeds ``u`` × the total."""
    k_max = probs.shape[0]
    acc = np.float32(0.0)
    for k in range(k_max):
        acc += probs[k]
        cdf[k] = acc
    target = u * acc
    count = 0
    for k in range(k_max):
        if cdf[k] <= target:
            count += 1
    return min(count, k_max - 1)


def _run(embed, w_cur, w_past, frame_bias, ring, ring_off, dil, w_res, b_res, w_skip, b_skip,
         w_h1, b_h1, w_h2, b_h2, hop, position, prev, uniforms, temperature, top_p, out, logits_out, groups):
    """``uniforms.shape[0]`` steps for every batch row; ``prev`` (-1: none) and ``ring`` updated.

    Rows are split into ``groups`` contiguous groups, one per thread; a group's rows advance in
    lockstep so every weight row read from cache serves all of them.
    """
    steps, batch = uniforms.shape
    layers, r, r2 = w_cur.shape
    s_ch, h_ch, k_max = w_skip.shape[1], w_h1.shape[1], w_h2.shape[1]
    keep_logits = logits_out.shape[1] > 0
    for gi in prange(groups):
        b0, b1 = gi * batch // groups, (gi + 1) * batch // groups
        n = b1 - b0
        h = np.zeros((n, r), np.float32)
        nxt = np.empty((n, r), np.float32)
        z = np.empty((n, r2), np.float32)
        past = np.empty((n, r2), np.float32)  # the past tap, gathered here (no aliasing) then stored
        gates = np.empty((n, layers * r), np.float32)
        skip = np.empty((n, s_ch), np.float32)
        hidden = np.empty((n, h_ch), np.float32)
        logits = np.empty((n, k_max), np.float32)
        probs = np.empty(k_max, np.float32)
        cdf = np.empty(k_max, np.float32)
        last = prev[b0:b1].copy()
        for s in range(steps):
            t = position + s
            frame = t // hop
            for g in range(n):
                if last[g] < 0:
                    h[g, :] = 0.0
                else:
                    h[g, :] = embed[last[g]]
            for i in range(layers):
                slot = ring_off[i] + t % dil[i]
                for g in range(n):
                    for j in range(r2):
                        z[g, j] = frame_bias[frame, i, b0 + g, j] + ring[slot, b0 + g, j]
                        past[g, j] = 0.0
                for k in range(r):
                    for g in range(n):
                        hk = h[g, k]
                        for j in range(r2):
                            z[g, j] += hk * w_cur[i, k, j]
                            past[g, j] += hk * w_past[i, k, j]
                for g in range(n):
                    for j in range(r2):
                        ring[slot, b0 + g, j] = past[g, j]  # this input's past tap, used d steps on
                for g in range(n):
                    for j in range(r):
                        a = _tanh(z[g, j])
                        gates[g, i * r + j] = a * _tanh(z[g, r + j]) + a  # 2 · tanh(a) · sigmoid(b)
                    for j in range(r):
                        nxt[g, j] = b_res[i, j] + h[g, j]
                for k in range(r):
                    for g in range(n):
                        v = gates[g, i * r + k]
                        for j in range(r):
                            nxt[g, j] += v * w_res[i, k, j]
                h, nxt = nxt, h
            for g in range(n):
                skip[g, :] = b_skip
                hidden[g, :] = b_h1
                logits[g, :] = b_h2
            for k in range(layers * r):
                for g in range(n):
                    v = gates[g, k]
                    for j in range(s_ch):
                        skip[g, j] += v * w_skip[k, j]
            for k in range(s_ch):
                for g in range(n):
                    v = max(skip[g, k], np.float32(0.0))
                    for j in range(h_ch):
                        hidden[g, j] += v * w_h1[k, j]
            for k in range(h_ch):
                for g in range(n):
                    v = max(hidden[g, k], np.float32(0.0))
                    for j in range(k_max):
                        logits[g, j] += v * w_h2[k, j]
            for g in range(n):
                if keep_logits:
                    logits_out[b0 + g, s] = logits[g]
                last[g] = _pick(logits[g], uniforms[s, b0 + g], temperature, top_p, probs, cdf)
                out[b0 + g, s] = last[g]
        prev[b0:b1] = last


if AVAILABLE:
    _tanh = njit(inline="always", cache=True)(_tanh)
    _invert = njit(cache=True)(_invert)
    _pick = njit(cache=True)(_pick)
    _run = njit(parallel=True, cache=True, error_model="numpy", fastmath=True)(_run)


def _note_first_compile() -> None:
    """Say why the first run on a machine pauses: numba compiles the loop once and caches it."""
    global _noted
    if _noted or _run.signatures:
        return
    _noted = True
    cache = Path(__file__).parent / "__pycache__"
    if not any(cache.glob("fastpath._run-*.nbi")):
        print("wavestack: compiling the fast sampler (once per installation, about 15 s)", file=sys.stderr)


_noted = False


class FastStepper:
    """Runs an ``IncrementalState`` forward by whole chunks in the compiled loop (CPU only)."""

    def __init__(self, state: IncrementalState) -> None:
        if not AVAILABLE:
            raise RuntimeError("the fast sampler needs numba (pip install numba)")
        self.state = state

        def np_(t):
            return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)

        self.embed = np_(state.embed)
        self.w_cur = np.stack([np_(w) for w in state.w_cur])
        self.w_past = np.stack([np_(w) for w in state.w_past])
        self.w_res = np.stack([np_(w) for w in state.w_res])
        self.b_res = np.stack([np_(b) for b in state.b_res])
        self.w_skip, self.b_skip = np_(state.w_skip), np_(state.b_skip)
        self.w_h1, self.b_h1 = np_(state.w_h1), np_(state.b_h1)
        self.w_h2, self.b_h2 = np_(state.w_h2), np_(state.b_h2)
        self.frame_bias = np_(state.frame_bias)  # (F, L, B, 2R)
        self.dil = np.array(state.dilations, np.int64)
        self.ring_off = np.concatenate([[0], np.cumsum(self.dil)[:-1]]).astype(np.int64)
        self.hop = state.hop if state.cond is not None else np.iinfo(np.int64).max

    def run(self, prev: np.ndarray | None, uniforms: np.ndarray, temperature: float, top_p: float,
            logits_out: np.ndarray | None = None) -> np.ndarray:
        """Generate ``len(uniforms)`` steps; returns classes (B, n); fills ``logits_out`` (B, n, K)."""
        st = self.state
        steps, batch = uniforms.shape
        _note_first_compile()
        numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
        if st.cond is not None and (st.position + steps - 1) // st.hop >= self.frame_bias.shape[0]:
            have = self.frame_bias.shape[0]
            raise IndexError(f"conditioning covers {have} frames; step {st.position + steps - 1} needs more")
        ring = np.concatenate([b.detach().cpu().numpy() for b in st.buffers])
        last = np.full(batch, -1, np.int64) if prev is None else np.asarray(prev, np.int64).copy()
        out = np.empty((batch, steps), np.int64)
        k = self.w_h2.shape[1]
        logits = logits_out if logits_out is not None else np.empty((batch, 0, k), np.float32)
        _run(self.embed, self.w_cur, self.w_past, self.frame_bias, ring, self.ring_off, self.dil,
             self.w_res, self.b_res, self.w_skip, self.b_skip, self.w_h1, self.b_h1, self.w_h2, self.b_h2,
             self.hop, st.position, last, np.ascontiguousarray(uniforms, np.float32),
             np.float32(temperature), np.float32(top_p), out, logits, min(batch, numba.get_num_threads()))
        for buf, off, d in zip(st.buffers, self.ring_off, self.dil, strict=True):  # back into the state
            buf.copy_(torch.from_numpy(ring[off:off + d]))
        st.position += steps
        return out
