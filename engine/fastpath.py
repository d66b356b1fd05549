"""The fast sampler: one compiled loop (numba) runs many generation steps with no interpreter in between.

Same weights and ring-buffer semantics as ``IncrementalState`` (it copies that state's prepared
weights, and reads its frame biases and updates its ring buffers in place, so the torch, numpy
and fast paths are interchangeable mid-sequence), and the same draw as ``sampling.pick``:
inverse CDF of the tempered top-p nucleus on the shared seeded uniform stream.

Batch rows are independent sequences: they are split into one group per thread, and a group's rows
advance in lockstep so each weight row loaded serves all of them. Each matrix product runs in
register blocks of 4 rows × 64 columns (``engine.simd`` vectors), so accumulators stay in registers
for the whole inner product. Channel counts are padded to multiples of 16 with zero weights; the
padded channels stay exactly zero (padded classes get a logit of -1e30 and no probability mass).
tanh and exp are vector approximations within a few float32 ulps.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

try:
    import numba
    from numba import njit, prange

    from .simd import hmax, hsum, vadd, vdiv, vexp, vfma, vload, vmax, vsplat, vstore, vsub, vtanh
except ImportError:  # the numpy path stays available
    numba = None

from . import lpc
from .wavenet import IncrementalState

AVAILABLE = numba is not None
V = 16  # lanes per vector; every padded width is a multiple
_NO_CLASS = np.float32(-1e30)  # the logit of a padded class


def _pad(n: int) -> int:
    return -(-n // V) * V


# ---- register-blocked matrix product: C[rows, cols] (+)= A[rows, kd] @ B[kd, cols] on flat arrays


def _load4(x, o):
    return vload(x, o), vload(x, o + V), vload(x, o + 2 * V), vload(x, o + 3 * V)


def _store4(x, o, r):
    vstore(x, o, r[0])
    vstore(x, o + V, r[1])
    vstore(x, o + 2 * V, r[2])
    vstore(x, o + 3 * V, r[3])


def _fma4(a, w, r):
    return vfma(a, w[0], r[0]), vfma(a, w[1], r[1]), vfma(a, w[2], r[2]), vfma(a, w[3], r[3])


def _start4(c, o, zero):
    if zero:
        v = vsplat(np.float32(0.0))
        return v, v, v, v
    return _load4(c, o)


def _block_4x64(a, ao, a_st, kd, b, bo, b_st, c, co, c_st, zero):
    r0, r1 = _start4(c, co, zero), _start4(c, co + c_st, zero)
    r2, r3 = _start4(c, co + 2 * c_st, zero), _start4(c, co + 3 * c_st, zero)
    for k in range(kd):
        w = _load4(b, bo + k * b_st)
        r0 = _fma4(vsplat(a[ao + k]), w, r0)
        r1 = _fma4(vsplat(a[ao + a_st + k]), w, r1)
        r2 = _fma4(vsplat(a[ao + 2 * a_st + k]), w, r2)
        r3 = _fma4(vsplat(a[ao + 3 * a_st + k]), w, r3)
    _store4(c, co, r0)
    _store4(c, co + c_st, r1)
    _store4(c, co + 2 * c_st, r2)
    _store4(c, co + 3 * c_st, r3)


def _block_4x16(a, ao, a_st, kd, b, bo, b_st, c, co, c_st, zero):
    if zero:
        r0 = r1 = r2 = r3 = vsplat(np.float32(0.0))
    else:
        r0, r1, r2, r3 = vload(c, co), vload(c, co + c_st), vload(c, co + 2 * c_st), vload(c, co + 3 * c_st)
    for k in range(kd):
        w = vload(b, bo + k * b_st)
        r0 = vfma(vsplat(a[ao + k]), w, r0)
        r1 = vfma(vsplat(a[ao + a_st + k]), w, r1)
        r2 = vfma(vsplat(a[ao + 2 * a_st + k]), w, r2)
        r3 = vfma(vsplat(a[ao + 3 * a_st + k]), w, r3)
    vstore(c, co, r0)
    vstore(c, co + c_st, r1)
    vstore(c, co + 2 * c_st, r2)
    vstore(c, co + 3 * c_st, r3)


def _block_1x64(a, ao, kd, b, bo, b_st, c, co, zero):
    r = _start4(c, co, zero)
    for k in range(kd):
        r = _fma4(vsplat(a[ao + k]), _load4(b, bo + k * b_st), r)
    _store4(c, co, r)


def _block_1x16(a, ao, kd, b, bo, b_st, c, co, zero):
    r = vsplat(np.float32(0.0)) if zero else vload(c, co)
    for k in range(kd):
        r = vfma(vsplat(a[ao + k]), vload(b, bo + k * b_st), r)
    vstore(c, co, r)


def _gemm(a, ao, a_st, rows, kd, b, bo, b_st, cols, c, co, c_st, zero):
    """c[co + g·c_st + j] (zero ? = : +=) Σ_k a[ao + g·a_st + k] · b[bo + k·b_st + j]; cols % 16 == 0."""
    g = 0
    while g + 4 <= rows:
        j = 0
        while j + 4 * V <= cols:
            _block_4x64(a, ao + g * a_st, a_st, kd, b, bo + j, b_st, c, co + g * c_st + j, c_st, zero)
            j += 4 * V
        while j < cols:
            _block_4x16(a, ao + g * a_st, a_st, kd, b, bo + j, b_st, c, co + g * c_st + j, c_st, zero)
            j += V
        g += 4
    while g < rows:
        j = 0
        while j + 4 * V <= cols:
            _block_1x64(a, ao + g * a_st, kd, b, bo + j, b_st, c, co + g * c_st + j, zero)
            j += 4 * V
        while j < cols:
            _block_1x16(a, ao + g * a_st, kd, b, bo + j, b_st, c, co + g * c_st + j, zero)
            j += V
        g += 1


# ---- the draw: ``sampling.pick`` for one row of (padded) logits


def _draw(logits, lo, classes, u, temperature, top_p, probs, sums, cand, order):
    """Inverse CDF of softmax(logits / T) (top-p nucleus when top_p < 1) at ``u``; probs is scratch."""
    kp = probs.shape[0]
    t = vsplat(temperature)
    m = _NO_CLASS
    for o in range(0, kp, V):
        x = vdiv(vload(logits, lo + o), t)
        vstore(probs, o, x)
        m = max(m, hmax(x))
    mv = vsplat(m)
    for c in range(kp // V):
        e = vexp(vsub(vload(probs, c * V), mv))
        vstore(probs, c * V, e)
        sums[c] = hsum(e)
    for k in range(classes, kp):  # padded classes: no mass
        probs[k] = 0.0
    if kp > classes:
        sums[kp // V - 1] = hsum(vload(probs, kp - V))
    if top_p < 1.0:
        return _draw_nucleus(probs[:classes], u, top_p, cand, order)
    total = np.float32(0.0)
    for c in range(kp // V):
        total += sums[c]
    target = u * total
    acc, c = np.float32(0.0), 0  # skip whole vectors whose cumulative mass stays within the target
    while c < kp // V - 1 and acc + sums[c] <= target:
        acc += sums[c]
        c += 1
    k = c * V
    while k < classes - 1:
        acc += probs[k]
        if acc > target:
            break
        k += 1
    return k


def _draw_nucleus(probs, u, top_p, cand, order):
    """The top-p draw without sorting every class: only those that can be in the nucleus are sorted."""
    classes = probs.shape[0]
    total = np.float32(0.0)
    for k in range(classes):
        total += probs[k]
    top = np.float32(0.0)
    for k in range(classes):
        probs[k] /= total
        top = max(top, probs[k])
    # the nucleus (largest classes first, until their mass reaches top_p) lies within {p >= cut} as
    # soon as that set's mass reaches top_p; the margin covers summation-order rounding
    cut = top
    while cut > 1e-30:
        cut *= np.float32(0.25)
        mass = np.float32(0.0)
        for k in range(classes):
            mass += probs[k] if probs[k] >= cut else np.float32(0.0)
        if mass >= top_p + 1e-4:
            break
    if cut <= 1e-30:
        cut = np.float32(0.0)
    m = 0
    for k in range(classes):  # candidates in class order, then a stable sort by descending p
        if probs[k] >= cut:
            cand[m], order[m] = probs[k], k
            m += 1
    if m > 48:
        sorted_at = np.argsort(-cand[:m], kind="mergesort")
        sorted_p, sorted_k = cand[:m][sorted_at], order[:m][sorted_at]
        cand[:m], order[:m] = sorted_p, sorted_k
    else:
        for i in range(1, m):
            p, k, j = cand[i], order[i], i
            while j > 0 and cand[j - 1] < p:
                cand[j], order[j] = cand[j - 1], order[j - 1]
                j -= 1
            cand[j], order[j] = p, k
    cum = np.float32(0.0)
    acc = np.float32(0.0)
    last = 0
    for i in range(m):  # the same float operations as pick: keep while (inclusive cum - p) < top_p
        cum += cand[i]
        if cum - cand[i] < top_p:
            acc += cand[i]
            last = i
        else:
            cand[i] = 0.0
    target = u * acc
    acc = np.float32(0.0)
    for i in range(m):
        acc += cand[i]
        if acc > target:
            return order[i]
    return order[last]


# ---- the loop


def _scratch(n):
    """An uninitialised float32 array of ``n`` starting on a 64-byte boundary (numba aligns to 32)."""
    raw = np.empty(n + V, np.float32)
    skip = (-raw.ctypes.data % 64) // 4
    return raw[skip:skip + n]


def _run(embed, w_cur, w_past, w_rs, b_res, b_skip, w_h1, b_h1, w_h2, b_h2, frame_bias, frame_base, ring,
         ring_off, dil, dims, hop, position, prev, uniforms, temperature, top_p, out, logits_out, groups,
         centre_w, lpc_buf, lpc_coef, lpc_mode, lpc_order, lpc_gamma, lpc_roll, levels, lpc_loud,
         loud_gamma, loud_power, loud_temperature, loud_top_p):
    """``uniforms.shape[0]`` steps for every batch row; ``prev`` (-1: none) and ``ring`` updated.

    ``dims`` = (layers, R, Rp, Sp, Hp, Kp, classes): R and the padded widths. ``frame_bias`` (a
    window of the state's, starting at frame ``frame_base``: it must hold every frame these steps
    reach) and ``ring`` are the state's own (2R wide rows); when R is not a multiple of 16 their rows are
    moved to and from the padded layout one element at a time. Rows are split into ``groups``
    contiguous groups, one per thread, whose rows advance in lockstep.

    A centred net (``lpc_mode`` 1: predictor fitted to the past, 2: from the codes, with
    coefficients per frame and row in ``lpc_coef`` rows frame · batch + row) runs each row's linear
    predictor (engine.lpc, on the state's tracker arrays in place), adds the prediction's
    interpolated ``centre_w`` row to the input, and (``lpc_roll``) reads its head outputs from the
    prediction's class. A predictor fitted to the past also gates the draw by loudness: a row whose
    window was louder than ``loud_power`` at its last refit (``lpc_loud``) draws at
    ``loud_temperature``/``loud_top_p``, its predictor widened by ``loud_gamma``.
    """
    steps, batch = uniforms.shape
    layers, r, rp, sp, hp, kp, classes = dims[0], dims[1], dims[2], dims[3], dims[4], dims[5], dims[6]
    r2, rs_w = 2 * rp, rp + sp  # widths of a gate pre-activation row and of a [h | skip] row
    padded = r != rp
    keep_logits = logits_out.shape[1] > 0
    for gi in prange(groups):
        b0, b1 = gi * batch // groups, (gi + 1) * batch // groups
        n = b1 - b0
        rs = _scratch(n * rs_w)  # per row: the residual stream h, then the skip sum
        z = _scratch(n * r2)
        z[:] = 0.0  # padded lanes stay zero
        past = _scratch(n * r2)
        gates = _scratch(n * rp)
        skip = _scratch(n * sp)
        hidden = _scratch(n * hp)
        logits = _scratch(n * kp)
        probs = _scratch(kp)
        sums = np.empty(kp // V, np.float32)
        cand, order = np.empty(classes, np.float32), np.empty(classes, np.int64)  # for top-p draws
        last = prev[b0:b1].copy()
        zero = vsplat(np.float32(0.0))
        lpc_tmp, lpc_acf = np.zeros(max(lpc_order, 1)), np.zeros(lpc_order + 1)
        cent = np.zeros(n, np.int64)
        rolled = _scratch(kp)
        rolled[:] = _NO_CLASS
        for s in range(steps):
            t = position + s
            frame = t // hop
            for g in range(n):
                for j in range(0, rs_w, V):
                    vstore(rs, g * rs_w + j, zero)
                if last[g] >= 0:
                    for j in range(0, rp, V):
                        vstore(rs, g * rs_w + j, vload(embed, last[g] * rp + j))
                if lpc_mode > 0:
                    value = levels[last[g]] if last[g] >= 0 else 0.0
                    if lpc_mode == 1:
                        p = lpc._step(lpc_buf[b0 + g], lpc_coef[b0 + g], lpc_tmp, lpc_acf, t, value,
                                      lpc_order, lpc_gamma, loud_gamma, loud_power, lpc_loud[b0 + g])
                    else:
                        p = lpc._step_codes(lpc_buf[b0 + g], lpc_coef[frame * batch + b0 + g], t, value,
                                            lpc_order)
                    u, cent[g] = lpc._centre(p, lpc.MU)
                    low = min(max(int(np.floor(u)), 0), classes - 2)
                    frac = vsplat(np.float32(u - low))
                    for j in range(0, rp, V):
                        e0 = vload(centre_w, low * rp + j)
                        e = vfma(frac, vsub(vload(centre_w, (low + 1) * rp + j), e0), e0)
                        vstore(rs, g * rs_w + j, vadd(vload(rs, g * rs_w + j), e))
            for i in range(layers):
                slot = ((ring_off[i] + t % dil[i]) * batch + b0) * 2 * r
                fb = (((frame - frame_base) * layers + i) * batch + b0) * 2 * r
                if padded:
                    for g in range(n):
                        for j in range(2 * r):
                            z[g * r2 + j + (rp - r) * (j >= r)] = frame_bias[fb + g * 2 * r + j] + \
                                ring[slot + g * 2 * r + j]
                else:
                    for q in range(0, n * r2, V):  # the rows of a group are contiguous in both
                        vstore(z, q, vadd(vload(frame_bias, fb + q), vload(ring, slot + q)))
                _gemm(rs, 0, rs_w, n, rp, w_cur, i * rp * r2, r2, r2, z, 0, r2, False)
                # this input's past tap, used d steps on
                if padded:
                    _gemm(rs, 0, rs_w, n, rp, w_past, i * rp * r2, r2, r2, past, 0, r2, True)
                    for g in range(n):
                        for j in range(2 * r):
                            ring[slot + g * 2 * r + j] = past[g * r2 + j + (rp - r) * (j >= r)]
                else:
                    _gemm(rs, 0, rs_w, n, rp, w_past, i * rp * r2, r2, r2, ring, slot, r2, True)
                for g in range(n):
                    for j in range(0, rp, V):
                        a = vtanh(vload(z, g * r2 + j))
                        vstore(gates, g * rp + j, vfma(a, vtanh(vload(z, g * r2 + rp + j)), a))
                        h = g * rs_w + j
                        vstore(rs, h, vadd(vload(rs, h), vload(b_res, i * rp + j)))
                # h += gates @ w_res, skip += gates @ w_skip, as one product (the last layer has no
                # residual output: skip only; one call site, as the kernel is inlined where called)
                h0 = rp if i + 1 == layers else 0
                _gemm(gates, 0, rp, n, rp, w_rs, i * rp * rs_w + h0, rs_w, rs_w - h0, rs, h0, rs_w, False)
            for g in range(n):
                for j in range(0, sp, V):
                    vstore(skip, g * sp + j, vmax(vadd(vload(rs, g * rs_w + rp + j), vload(b_skip, j)), zero))
                for j in range(0, hp, V):
                    vstore(hidden, g * hp + j, vload(b_h1, j))
                for j in range(0, kp, V):
                    vstore(logits, g * kp + j, vload(b_h2, j))
            _gemm(skip, 0, sp, n, sp, w_h1, 0, hp, hp, hidden, 0, hp, False)
            for q in range(0, n * hp, V):
                vstore(hidden, q, vmax(vload(hidden, q), zero))
            _gemm(hidden, 0, hp, n, hp, w_h2, 0, kp, kp, logits, 0, kp, False)
            for g in range(n):
                src, off = logits, g * kp
                if lpc_roll:  # head output j stands for class (j + c - K/2) mod K
                    for k in range(classes):
                        rolled[k] = logits[g * kp + (k - cent[g] + classes // 2 + classes) % classes]
                    src, off = rolled, 0
                if keep_logits:
                    logits_out[b0 + g, s] = src[off : off + classes]
                loud = lpc_loud[b0 + g, 0]  # (always False without a loudness gate)
                last[g] = _draw(src, off, classes, uniforms[s, b0 + g],
                                loud_temperature if loud else temperature, loud_top_p if loud else top_p,
                                probs, sums, cand, order)
                out[b0 + g, s] = last[g]
        prev[b0:b1] = last


if AVAILABLE:
    _jit = njit(cache=True, fastmath=True)
    _load4, _store4, _fma4, _start4 = _jit(_load4), _jit(_store4), _jit(_fma4), _jit(_start4)
    _block_4x64, _block_4x16 = _jit(_block_4x64), _jit(_block_4x16)
    _block_1x64, _block_1x16 = _jit(_block_1x64), _jit(_block_1x16)
    _gemm = njit(cache=True, fastmath=True)(_gemm)
    _draw_nucleus = njit(cache=True)(_draw_nucleus)
    _draw = njit(cache=True, fastmath=True)(_draw)
    _scratch = _jit(_scratch)
    # nogil: a server thread answering OSC keeps running while a chunk is generated
    _run = njit(parallel=True, cache=True, error_model="numpy", fastmath=True, nogil=True)(_run)


def will_compile() -> bool:
    """Whether the next fast render compiles the loop first (about a minute, once per installation):
    it is neither compiled in this process nor in numba's cache."""
    if not AVAILABLE or _run.signatures:
        return False
    try:  # numba keeps one cache per source folder and stamp: another clone's does not count
        return not _run._cache._cache_file._load_index()
    except Exception:  # (numba's internals moved: any cached loop, as far as can be seen)
        return not any(Path(numba.config.CACHE_DIR).glob("**/fastpath._run-*.nbi"))


def warm_up() -> None:
    """Compile the loop now, if neither this process nor numba's cache has it, by sampling a few
    steps of the built-in default model (set-up runs this, so that neither the first render nor
    the tests wait for the compiler); says so on stderr either way."""
    if not AVAILABLE:
        print("wavestack: numba is not installed: renders use the slower numpy sampler", file=sys.stderr)
        return
    if not will_compile():
        print(f"wavestack: the fast sampler is compiled for this CPU already ({numba.config.CACHE_DIR})",
              file=sys.stderr)
        return
    from .bundle import load_bundle

    load_bundle("default").stack.sample(0.01, seed=0)


def _note_first_compile() -> float | None:
    """Say why the first run on a machine pauses (numba compiles the loop once and caches it);
    returns when compiling started, or None if the loop is compiled or cached already."""
    global _noted
    if _noted or _run.signatures:
        return None
    _noted = True
    if not will_compile():
        return None  # loading from the cache takes a second or two
    print(f"wavestack: compiling the fast sampler for this CPU (once; cached in {numba.config.CACHE_DIR}) …",
          file=sys.stderr, flush=True)
    return time.perf_counter()


_noted = False
compile_seconds = 0.0  # what compiling the loop cost this process (0: it came from the cache)


def _aligned(x: np.ndarray) -> np.ndarray:
    """A float32 copy of ``x`` whose data starts on a 64-byte boundary: with rows a multiple of 16
    floats wide, every vector load then reads one cache line instead of straddling two."""
    x = np.asarray(x, np.float32)
    raw = np.empty(x.size + V, np.float32)
    skip = (-raw.ctypes.data % 64) // 4
    out = raw[skip:skip + x.size].reshape(x.shape)
    out[...] = x
    return out


def _widen(x: np.ndarray, axis: int, width: int, fill: float = 0.0) -> np.ndarray:
    """``x`` padded along ``axis`` to ``width`` with ``fill``."""
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, width - x.shape[axis])
    return np.pad(x, pad, constant_values=fill)


def _halves(x: np.ndarray, r: int, rp: int) -> np.ndarray:
    """The last axis [a | b] (2r wide) as [a, zeros | b, zeros] (2rp wide)."""
    return np.concatenate([_widen(x[..., :r], -1, rp), _widen(x[..., r:], -1, rp)], axis=-1)


class FastStepper:
    """Runs an ``IncrementalState`` forward by whole chunks in the compiled loop (CPU only)."""

    def __init__(self, state: IncrementalState) -> None:
        if not AVAILABLE:
            raise RuntimeError("the fast sampler needs numba (pip install numba)")
        if state.ring.dtype != torch.float32 or state.ring.device.type != "cpu":
            where = f"{state.ring.dtype} on {state.ring.device}"
            raise ValueError(f"the fast sampler runs float32 on the CPU, not {where}")
        if state.net.lpc_centre == "logistic":
            raise ValueError("the fast sampler does not run logistic-centred decoders yet; use sampler torch")
        self.state = state

        def np_(t):  # no copy for contiguous float32
            return np.ascontiguousarray(t.detach().numpy(), np.float32)

        r = state.net.residual
        rp, sp = _pad(r), _pad(state.w_skip.shape[1])
        hp, kp = _pad(state.w_h1.shape[1]), _pad(state.w_h2.shape[1])
        self.classes = state.w_h2.shape[1]
        self.dims = np.array([len(state.buffers), r, rp, sp, hp, kp, self.classes], np.int64)

        def square(w):  # (R, 2R) → (Rp, 2Rp)
            return _widen(_halves(np_(w), r, rp), 0, rp)

        self.w_cur = _aligned(np.stack([square(w) for w in state.w_cur]).ravel())
        self.w_past = _aligned(np.stack([square(w) for w in state.w_past]).ravel())
        w_skip = np_(state.w_skip).reshape(len(state.buffers), r, -1)
        w_res = [np_(w) for w in state.w_res] + [np.zeros((r, r), np.float32)]  # the last layer has none
        self.w_rs = _aligned(np.stack([  # per layer (Rp, Rp + Sp): [w_res | w_skip of that layer]
            _widen(np.concatenate([_widen(w, 1, rp), _widen(s, 1, sp)], axis=1), 0, rp)
            for w, s in zip(w_res, w_skip, strict=True)
        ]).ravel())
        b_res = [np_(b) for b in state.b_res] + [np.zeros(r, np.float32)]
        self.b_res = _aligned(np.stack([_widen(b, 0, rp) for b in b_res]).ravel())
        self.b_skip = _aligned(_widen(np_(state.b_skip), 0, sp))
        self.w_h1 = _aligned(_widen(_widen(np_(state.w_h1), 0, sp), 1, hp).ravel())
        self.b_h1 = _aligned(_widen(np_(state.b_h1), 0, hp))
        self.w_h2 = _aligned(_widen(_widen(np_(state.w_h2), 0, hp), 1, kp).ravel())
        self.b_h2 = _aligned(_widen(np_(state.b_h2), 0, kp, _NO_CLASS))
        self.embed = _aligned(_widen(np_(state.embed), 1, rp).ravel())
        self.dil = np.array(state.dilations, np.int64)
        self.ring_off = np.concatenate([[0], np.cumsum(self.dil)[:-1]]).astype(np.int64)
        self.hop = state.hop if state.conditioned else np.iinfo(np.int64).max
        tracker = state.tracker
        self.lpc_order = 0 if tracker is None else tracker.order
        self.lpc_mode = 0 if tracker is None else tracker.mode
        self.lpc_gamma = float(getattr(tracker, "gamma", 1.0))
        self.loud_gamma = float(getattr(tracker, "loud_gamma", 1.0))
        self.loud_power = float(getattr(tracker, "loud_power", np.inf))
        self.centre_w = _aligned(np.zeros(V) if tracker is None else
                                 _widen(np_(state.net.centre_embed.weight), 1, rp).ravel())

    def run(self, prev: np.ndarray | None, uniforms: np.ndarray, temperature: float, top_p: float,
            loud: tuple[float, float] | None = None, logits_out: np.ndarray | None = None) -> np.ndarray:
        """Generate ``len(uniforms)`` steps; returns classes (B, n); fills ``logits_out`` (B, n, K).
        ``loud``: (temperature, top-p) of the rows the predictor's loudness gate marks loud."""
        loud_t, loud_p = (temperature, top_p) if loud is None else loud
        st = self.state
        steps, batch = uniforms.shape
        compiling = _note_first_compile()
        numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
        last = np.full(batch, -1, np.int64) if prev is None else np.asarray(prev, np.int64).copy()
        out = np.empty((batch, steps), np.int64)
        keep = logits_out is not None
        done = 0
        while done < steps:  # one call per window of frame biases the steps reach
            frame = st.position // self.hop
            base, window = st.biases.at(frame)
            m = steps - done if not st.conditioned else \
                min(steps - done, (base + window.shape[0]) * self.hop - st.position)
            part = np.empty((batch, m), np.int64)
            logits = np.empty((batch, m if keep else 0, self.classes), np.float32)
            _run(self.embed, self.w_cur, self.w_past, self.w_rs, self.b_res, self.b_skip, self.w_h1,
                 self.b_h1, self.w_h2, self.b_h2, window.numpy().ravel(), base, st.ring.numpy().ravel(),
                 self.ring_off, self.dil, self.dims, self.hop, st.position, last,
                 np.ascontiguousarray(uniforms[done:done + m], np.float32), np.float32(temperature),
                 np.float32(top_p), part, logits, min(batch, numba.get_num_threads()), self.centre_w,
                 *self._tracker_arrays(batch), self.lpc_mode, self.lpc_order, self.lpc_gamma,
                 self.lpc_mode > 0 and st.net.lpc_centre == "classes", lpc.LEVELS, self._loud(batch),
                 self.loud_gamma, self.loud_power, np.float32(loud_t), np.float32(loud_p))
            out[:, done:done + m] = part
            if keep:
                logits_out[:, done:done + m] = logits
            st.position += m
            done += m
        if compiling is not None:
            global compile_seconds
            compile_seconds = time.perf_counter() - compiling
            print(f"wavestack: compiled the fast sampler in {compile_seconds:.0f} s", file=sys.stderr,
                  flush=True)
        return out

    def _loud(self, batch: int) -> np.ndarray:
        """The predictor's per-row loudness flags, updated in place (a stand-in if none)."""
        loud = getattr(self.state.tracker, "loud", None)
        return np.zeros((batch, 1), np.bool_) if loud is None else loud

    def _tracker_arrays(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """The linear predictor's history and coefficients, updated in place (stand-ins if none)."""
        tracker = self.state.tracker
        if tracker is None:
            return np.zeros((batch, 1)), np.zeros((batch, 1))
        return tracker.buf, tracker.coef.reshape(-1, tracker.coef.shape[-1])
