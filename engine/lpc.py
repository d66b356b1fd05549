"""Backward-adaptive linear prediction of μ-law audio, computed the same way in training and sampling.

Every ``BLOCK`` samples the predictor's coefficients are refitted by Levinson-Durbin to the
autocorrelation of the previous ``WINDOW`` samples (zeros before the start); each sample's
prediction is ``p[t] = Σ_i a[i] · x[t - 1 - i]``. Nothing about the future is used, so a sampler can
compute it from what it has drawn so far.

One set of compiled functions (numba, strict IEEE arithmetic: no reassociation) computes it for a
whole sequence (training data, evaluation) and step by step (the samplers). They read the same
values in the same order, so the predictions agree bit for bit, and so do the μ-law classes of the
predictions, which a centred decoder uses to place its output distribution.

The other source of a prediction is the codes (``CodeTracker``, ``predict_from_codes``): a level
turns its conditioning into reflection coefficients per frame (a stable predictor by
construction), so the prediction never adapts to the decoder's own samples, as in LPCNet, where
the coefficients come from the conditioning features.

The fast sampler's compiled loop embeds these functions; ``engine.jitcache`` names numba's cache
after this file too, so an edit here recompiles it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import jitcache  # noqa: F401  (before any cached njit: see engine.jitcache)

try:
    from numba import njit
except ImportError:  # pragma: no cover - numba is a dependency; this keeps import errors readable
    njit = None

WINDOW = 1024  # samples the coefficients are fitted to
BLOCK = 128  # samples between refits
WHITE_NOISE = 1e-4  # relative white-noise correction of the zero lag: keeps the recursion stable
MU = 255
LEVELS = np.asarray(  # the linear value of every μ-law class, as the decoder's float32 output
    np.sign(np.arange(MU + 1) * (2.0 / MU) - 1.0)
    * np.expm1(np.abs(np.arange(MU + 1) * (2.0 / MU) - 1.0) * math.log1p(MU)) / MU,
    dtype=np.float32,
).astype(np.float64)


def _fit(hist, order, a, tmp, acf):
    """Fit ``a[:order]`` to ``hist`` (WINDOW samples) by the autocorrelation method; returns the
    window's energy (its zero lag, Σ x², before the white-noise correction)."""
    n = hist.shape[0]
    for lag in range(order + 1):
        acf[lag] = 0.0
    for i in range(n):  # lags innermost: each lag's sum still runs in index order
        x = hist[i]
        top = min(order, i)
        for lag in range(top + 1):
            acf[lag] += x * hist[i - lag]
    for k in range(order):
        a[k] = 0.0
    energy = acf[0]
    if energy <= 0.0:
        return energy
    acf[0] *= 1.0 + WHITE_NOISE
    err = acf[0]
    for m in range(order):
        acc = acf[m + 1]
        for k in range(m):
            acc -= a[k] * acf[m - k]
        refl = acc / err
        for k in range(m):
            tmp[k] = a[k] - refl * a[m - 1 - k]
        for k in range(m):
            a[k] = tmp[k]
        a[m] = refl
        err *= 1.0 - refl * refl
        if err <= 0.0:
            break
    return energy


def _widen(a, order, gamma):
    """Widen the predictor's resonances by ``gamma`` < 1 (``a[i] *= gamma ** (i + 1)``: every pole
    pulled towards the centre)."""
    if gamma != 1.0:
        g = 1.0
        for k in range(order):
            g *= gamma
            a[k] *= g


def _coefficients(hist, order, a, tmp, acf, gamma):
    """``_fit``, then ``_widen`` by ``gamma``."""
    _fit(hist, order, a, tmp, acf)
    _widen(a, order, gamma)


def _dot_past(buf, end, a, order):
    """Σ_i a[i] · buf[end - 1 - i]: the prediction of the sample after ``buf[end - 1]``."""
    p = 0.0
    for i in range(order):
        p += a[i] * buf[end - 1 - i]
    return p


def _centre(p, mu):
    """The continuous μ-law class coordinate of ``p`` and its nearest class (as ``mulaw.encode``)."""
    x = min(1.0, max(-1.0, p))
    y = math.log1p(mu * abs(x)) / math.log1p(mu)
    if x < 0.0:
        y = -y
    u = (y + 1.0) * (mu / 2.0)
    return u, int(np.rint(u))


def _predict(classes, levels, order, gamma, p_out, u_out, c_out):
    """Predictions, centre coordinates and centre classes of a whole class sequence."""
    n = classes.shape[0]
    xpad = np.zeros(WINDOW + n)
    for t in range(n):
        xpad[WINDOW + t] = levels[classes[t]]
    a, tmp, acf = np.zeros(max(order, 1)), np.zeros(max(order, 1)), np.zeros(order + 1)
    for t in range(n):
        if t % BLOCK == 0:
            _coefficients(xpad[t : t + WINDOW], order, a, tmp, acf, gamma)
        p = _dot_past(xpad, WINDOW + t, a, order)
        u, c = _centre(p, MU)
        p_out[t], u_out[t], c_out[t] = p, u, c


def _step(buf, a, tmp, acf, t, prev_value, order, gamma, loud_gamma, loud_power, loud):
    """One sampler step of the tracker ``buf`` (WINDOW + BLOCK): take x[t-1], return p[t].

    ``buf[:WINDOW]`` holds the WINDOW samples before the current block; the block's samples follow.
    At each refit ``loud[0]`` says whether that window's mean power exceeds ``loud_power``, and the
    coefficients are widened by ``loud_gamma`` if so, by ``gamma`` if not.
    """
    j = t % BLOCK
    if t > 0:
        buf[WINDOW + (t - 1) % BLOCK] = prev_value
    if j == 0:
        if t > 0:
            for i in range(WINDOW):
                buf[i] = buf[BLOCK + i]
        loud[0] = _fit(buf[:WINDOW], order, a, tmp, acf) > loud_power * WINDOW
        _widen(a, order, loud_gamma if loud[0] else gamma)
    return _dot_past(buf, WINDOW + j, a, order)


def _step_codes(hist, a, t, prev_value, order):
    """One step of a code-driven predictor: ``hist[i]`` = x[t-1-i] after taking x[t-1]; returns
    Σ_i a[i] · x[t-1-i] with the frame's coefficients ``a``."""
    if t > 0:
        for i in range(order - 1, 0, -1):
            hist[i] = hist[i - 1]
        hist[0] = prev_value
    p = 0.0
    for i in range(order):
        p += a[i] * hist[i]
    return p


def _prime(buf, a, tmp, acf, classes, levels, order, gamma, loud_gamma, loud_power, loud):
    """``_step`` over a known prefix: steps 0 .. len - 1."""
    for t in range(classes.shape[0]):
        _step(buf, a, tmp, acf, t, levels[classes[t - 1]] if t > 0 else 0.0, order, gamma, loud_gamma,
              loud_power, loud)


if njit is not None:
    _fit = njit(cache=True, nogil=True)(_fit)
    _widen = njit(cache=True, nogil=True)(_widen)
    _coefficients = njit(cache=True, nogil=True)(_coefficients)
    _dot_past = njit(cache=True, nogil=True)(_dot_past)
    _centre = njit(cache=True, nogil=True)(_centre)
    _predict = njit(cache=True, nogil=True)(_predict)
    _step = njit(cache=True, nogil=True)(_step)
    _prime = njit(cache=True, nogil=True)(_prime)
    _step_codes = njit(cache=True, nogil=True)(_step_codes)


def predict(classes: np.ndarray, order: int, gamma: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear predictions (float64), centre coordinates (float32) and centre classes (int64) of
    every position of a μ-law class sequence (T,); ``gamma``: see ``_coefficients``."""
    classes = np.ascontiguousarray(classes, dtype=np.int64)
    n = classes.shape[0]
    p, u, c = np.empty(n), np.empty(n), np.empty(n, np.int64)
    _predict(classes, LEVELS, order, float(gamma), p, u, c)
    return p, u.astype(np.float32), c


def loud_power(loud_db: float | None) -> float:
    """The mean power above which a predictor window counts as loud (``SamplingConfig.loud_db``;
    None: never)."""
    return math.inf if loud_db is None else 10.0 ** (loud_db / 10.0)


def loud_mask(classes: torch.Tensor, loud_db: float | None) -> torch.Tensor:
    """(B, T) bool for classes (B, T): at each position, whether its last refit found the window
    before it (zeros before the start) louder than ``loud_db`` — what ``Tracker`` decides step by
    step, for a whole known sequence at once."""
    if loud_db is None:
        return torch.zeros(classes.shape, dtype=torch.bool, device=classes.device)
    power = torch.from_numpy(LEVELS).to(classes.device)[classes].pow(2)  # (B, T) float64
    energy = torch.nn.functional.pad(power.cumsum(dim=1), (1, 0))  # energy[:, t] = Σ power[:, :t]
    starts = torch.arange(0, classes.shape[1], BLOCK, device=classes.device)
    window = energy[:, starts] - energy[:, (starts - WINDOW).clamp(min=0)]
    loud = window > loud_power(loud_db) * WINDOW
    return loud.repeat_interleave(BLOCK, dim=1)[:, : classes.shape[1]]


class Tracker:
    """The step-by-step predictor of ``batch`` sequences: ``step(t, prev)`` gives p[t] per row.

    It holds WINDOW + BLOCK past samples per row; ``prime`` fills it from a known prefix.
    """

    mode = 1  # the fast loop's name for it (2: CodeTracker)

    def __init__(self, batch: int, order: int, gamma: float = 1.0, loud_db: float | None = None,
                 loud_gamma: float | None = None) -> None:
        self.order, self.gamma = order, float(gamma)
        self.loud_gamma = self.gamma if loud_gamma is None else float(loud_gamma)
        # mean power above which a row plays loud (engine.config.SamplingConfig.loud_db)
        self.loud_power = loud_power(loud_db)
        self.loud = np.zeros((batch, 1), np.bool_)  # per row, as of its last refit
        self.buf = np.zeros((batch, WINDOW + BLOCK))
        self.coef = np.zeros((batch, max(order, 1)))
        self.tmp = np.zeros(max(order, 1))
        self.acf = np.zeros(order + 1)

    def _gate(self) -> tuple[float, float, float]:
        return self.gamma, self.loud_gamma, self.loud_power

    def step(self, t: int, prev: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centre coordinates (B,) float32, classes (B,) int64 and predictions (B,) of step ``t``;
        ``prev`` = x[t-1]."""
        batch = self.buf.shape[0]
        u, c, p = np.empty(batch, np.float32), np.empty(batch, np.int64), np.empty(batch)
        for b in range(batch):
            value = 0.0 if prev is None else LEVELS[int(prev[b])]
            p[b] = _step(self.buf[b], self.coef[b], self.tmp, self.acf, t, value, self.order,
                         *self._gate(), self.loud[b])
            u[b], c[b] = _centre(p[b], MU)
        return u, c, p

    def prime(self, prefix: np.ndarray) -> None:
        """Run the tracker over a known prefix (B, P), ready for step P."""
        prefix = np.ascontiguousarray(prefix, dtype=np.int64)
        for b in range(self.buf.shape[0]):
            _prime(self.buf[b], self.coef[b], self.tmp, self.acf, prefix[b], LEVELS, self.order,
                   *self._gate(), self.loud[b])


class CodeTracker:
    """The step-by-step code-driven predictor of ``batch`` rows: coefficients ``coef`` (F, B, order)
    per frame of ``hop`` samples, the last ``order`` samples per row."""

    mode = 2  # the fast loop's name for it (1: Tracker)

    def __init__(self, coef: np.ndarray, hop: int) -> None:
        self.coef = np.ascontiguousarray(coef, dtype=np.float64)
        _, batch, self.order = self.coef.shape
        self.hop = hop
        self.buf = np.zeros((batch, self.order))

    def step(self, t: int, prev: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        frame = t // self.hop
        if frame >= self.coef.shape[0]:
            have = self.coef.shape[0]
            raise IndexError(f"the predictor's coefficients cover {have} frames; step {t} needs more")
        batch = self.buf.shape[0]
        u, c, p = np.empty(batch, np.float32), np.empty(batch, np.int64), np.empty(batch)
        for b in range(batch):
            value = 0.0 if prev is None else LEVELS[int(prev[b])]
            p[b] = _step_codes(self.buf[b], self.coef[frame, b], t, value, self.order)
            u[b], c[b] = _centre(p[b], MU)
        return u, c, p

    def prime(self, prefix: np.ndarray) -> None:
        for t in range(prefix.shape[1]):
            self.step(t, None if t == 0 else prefix[:, t - 1])


def predictor_from_reflections(k: torch.Tensor) -> torch.Tensor:
    """Direct-form predictor coefficients (..., order) from reflection coefficients in (-1, 1)
    (Levinson step-up; |k| < 1 makes the synthesis filter stable); differentiable."""
    a = k[..., :1]
    for m in range(1, k.shape[-1]):
        km = k[..., m : m + 1]
        a = torch.cat([a - km * a.flip(-1), km], dim=-1)
    return a


def predict_from_codes(classes: torch.Tensor, coef: torch.Tensor, hop: int) -> torch.Tensor:
    """Σ_i a[i] · x[t-1-i] for classes (B, T) and per-frame coefficients (B, order, F), in float64
    (zeros before the start), differentiable in ``coef``."""
    order = coef.shape[1]
    x = torch.from_numpy(LEVELS).to(classes.device)[classes]  # (B, T) float64
    past = torch.nn.functional.pad(x, (order, -1)).unfold(1, order, 1).flip(-1)  # (B, T, order): x[t-1-i]
    frames = coef.transpose(1, 2).to(torch.float64)  # (B, F, order)
    per_sample = frames.repeat_interleave(hop, dim=1)[:, : classes.shape[1]]
    return (past * per_sample).sum(-1)


def centre_torch(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``_centre`` for a tensor of predictions: (u float32, differentiable; c long)."""
    x = p.clamp(-1.0, 1.0)
    y = torch.sign(x) * torch.log1p(MU * x.abs()) / math.log1p(MU)
    u = (y + 1.0) * (MU / 2.0)
    return u.to(torch.float32), torch.round(u.detach()).long()


def logistic_prior(p: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Log-probabilities (..., MU + 1) of every μ-law class under a logistic of linear ``scale``
    centred on ``p`` (both (...)), floored at 1e-12; differentiable in both."""
    edges = torch.from_numpy(_edges()).to(device=p.device, dtype=torch.float32)
    z = (edges - p.float().unsqueeze(-1)) / scale.float().unsqueeze(-1)  # (..., MU)
    cdf = torch.sigmoid(z)
    below = torch.nn.functional.pad(cdf, (1, 0), value=0.0)
    above = torch.nn.functional.pad(cdf, (0, 1), value=1.0)
    return torch.log((above - below).clamp_min(1e-12))


def reference_nll(classes: np.ndarray, order: int, floor: float = 1e-4) -> float:
    """Bits per sample of a linear-prediction coder of a μ-law class sequence: a logistic centred
    on the prediction, whose scale is the mean absolute residual of the previous WINDOW samples
    (refreshed every BLOCK), integrated over each class's interval. A ``floor`` share of uniform
    probability keeps every class possible (it costs at most log2(1/(1 - floor)) bits)."""
    classes = np.asarray(classes, dtype=np.int64)
    p, _, _ = predict(classes, order)
    x = LEVELS[classes]
    err = np.abs(x - p)
    n = len(classes)
    csum = np.concatenate([[0.0], np.cumsum(err)])
    starts = np.arange(0, n, BLOCK)
    lo = np.maximum(starts - WINDOW, 0)
    count = starts - lo
    mad = np.where(count > 0, (csum[starts] - csum[lo]) / np.maximum(count, 1), 0.0)
    scale_block = np.maximum(mad / (2.0 * math.log(2.0)), 1e-5)  # logistic: mean |e| = 2 ln2 · s
    scale = np.repeat(scale_block, BLOCK)[:n]
    edges = _edges()
    upper = np.where(classes < MU, edges[np.minimum(classes, MU - 1)], np.inf)
    lower = np.where(classes > 0, edges[np.maximum(classes - 1, 0)], -np.inf)
    zu, zl = (upper - p) / scale, (lower - p) / scale
    # the difference of the two tails that are small, so far-off classes keep their precision
    prob = np.where(zl + zu > 0, _logistic_cdf(-zl) - _logistic_cdf(-zu),
                    _logistic_cdf(zu) - _logistic_cdf(zl))
    prob = (1.0 - floor) * np.maximum(prob, 0.0) + floor / (MU + 1)
    return float(-np.log2(prob).mean())


def _edges() -> np.ndarray:
    """Linear values halfway (in the μ-law domain) between neighbouring classes: MU boundaries."""
    y = (np.arange(MU) + 0.5) * (2.0 / MU) - 1.0
    return np.sign(y) * np.expm1(np.abs(y) * math.log1p(MU)) / MU


def _logistic_cdf(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))
