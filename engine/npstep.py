"""The incremental step and the draw in numpy: same state, same arithmetic, less dispatch overhead.

A batch-1 step is ~25 matrix-vector products of a few dozen elements; torch spends ~2 µs of
dispatch on each, numpy well under 1 µs. ``NumpyStepper`` works on numpy views of an
``IncrementalState``'s own tensors (weights, frame biases, ring buffers), so ``prime`` and the
ring-buffer contents are shared: the two paths are interchangeable mid-sequence.
"""

from __future__ import annotations

import numpy as np

from .wavenet import IncrementalState


class NumpyStepper:
    """``step(prev)`` like ``IncrementalState.step`` with numpy arrays in and out (CPU only)."""

    def __init__(self, state: IncrementalState) -> None:
        if state.net.lpc_centre == "logistic":
            raise ValueError("the numpy sampler does not run logistic-centred decoders; use sampler torch")
        self.state = state
        r, layers = state.net.residual, len(state.buffers)

        def np_(t):  # shares memory with the tensor
            return t.detach().numpy()

        self.embed = np_(state.embed)
        self.w_cur, self.w_past = [np_(w) for w in state.w_cur], [np_(w) for w in state.w_past]
        self.w_res, self.b_res = [np_(w) for w in state.w_res], [np_(b) for b in state.b_res]
        self.w_skip, self.b_skip = np_(state.w_skip), np_(state.b_skip)
        self.w_h1, self.b_h1 = np_(state.w_h1), np_(state.b_h1)
        self.w_h2, self.b_h2 = np_(state.w_h2), np_(state.b_h2)
        self._window: tuple[int, np.ndarray] = (-1, np.empty((0,), np.float32))  # (base, frame biases)
        self.buffers = [np_(b) for b in state.buffers]
        self.z = [np.empty((state.batch, 2 * r), np.float32) for _ in range(layers)]
        # (L, B, R): each layer's gate output contiguous, so the matmul that reads it takes BLAS
        self.gates = np.zeros((layers, state.batch, r), np.float32)
        self.views = [(z[:, :r], z[:, r:], self.gates[i]) for i, z in enumerate(self.z)]
        self.zero_input = np.zeros((state.batch, r), np.float32)
        self.centre = None if state.tracker is None else np_(state.net.centre_embed.weight)

    def step(self, prev: np.ndarray | None) -> np.ndarray:
        st = self.state
        t = st.position
        h = self.zero_input if prev is None else self.embed[prev]
        if st.tracker is not None:  # a centred net: the linear prediction is an input
            u, centre, _ = st.tracker.step(t, prev)
            low = np.clip(np.floor(u), 0, self.centre.shape[0] - 2).astype(np.int64)
            frac = (u - low).astype(np.float32)[:, None]
            h = h + self.centre[low] * (1 - frac) + self.centre[low + 1] * frac
        frame = t // st.hop if st.conditioned else 0
        base, window = self._window
        if not 0 <= frame - base < window.shape[0]:
            base, tensor = st.biases.at(frame)
            self._window = base, window = base, tensor.numpy()
        biases = window[frame - base]
        for i, (a, b, g) in enumerate(self.views):
            z, slot = self.z[i], self.buffers[i][t % st.dilations[i]]
            np.dot(h, self.w_cur[i], out=z)
            z += biases[i]
            z += slot
            np.tanh(z, out=z)
            np.dot(h, self.w_past[i], out=slot)  # this input's past tap, used d steps later
            np.multiply(a, b, out=g)
            g += a  # 2 · tanh(a) · sigmoid(b)
            if i < len(self.w_res):  # the last layer's output goes to the skip sum only
                nxt = g @ self.w_res[i]
                nxt += self.b_res[i]
                nxt += h
                h = nxt
        skip = self.gates.transpose(1, 0, 2).reshape(st.batch, -1) @ self.w_skip
        skip += self.b_skip
        np.maximum(skip, 0.0, out=skip)
        out = skip @ self.w_h1
        out += self.b_h1
        np.maximum(out, 0.0, out=out)
        logits = out @ self.w_h2
        logits += self.b_h2
        st.position = t + 1
        if st.tracker is not None and st.net.lpc_centre == "classes":  # counted from the centre
            k = logits.shape[1]
            index = (np.arange(k) - centre[:, None] + k // 2) % k
            logits = np.take_along_axis(logits, index, axis=1)
        return logits

    def run(self, prev: np.ndarray | None, uniforms: np.ndarray, temperature: float,
            top_p: float, loud: tuple[float, float] | None = None) -> np.ndarray:
        """``len(uniforms)`` steps with draws, like ``FastStepper.run``; returns classes (B, n)."""
        out = np.empty((self.state.batch, uniforms.shape[0]), np.int64)
        for i, u in enumerate(uniforms):
            logits = self.step(prev)
            prev = pick_np(logits, u, temperature, top_p)
            rows = self.state.loud_rows()
            if loud is not None and rows is not None and rows.any():  # those rows draw with the loud settings
                prev = np.where(rows, pick_np(logits, u, *loud), prev)
            out[:, i] = prev
        return out


def pick_np(logits: np.ndarray, u: np.ndarray, temperature: float, top_p: float) -> np.ndarray:
    """Numpy twin of ``sampling.pick``: inverse-CDF draw from the tempered top-p nucleus."""
    x = logits / np.float32(temperature)
    x -= x.max(axis=1, keepdims=True)
    probs = np.exp(x, out=x)
    if top_p < 1.0:
        probs /= probs.sum(axis=1, keepdims=True)
        order = np.argsort(-probs, axis=1, kind="stable")
        probs = np.take_along_axis(probs, order, axis=1)
        cum = np.cumsum(probs, axis=1)
        probs *= (cum - probs) < top_p  # smallest prefix whose mass reaches top_p
    cdf = np.cumsum(probs, axis=1)
    k = np.minimum((cdf <= (u * cdf[:, -1])[:, None]).sum(axis=1), probs.shape[1] - 1)
    if top_p < 1.0:
        k = order[np.arange(k.shape[0]), k]
    return k
