"""Pre-emphasis before μ-law and de-emphasis after (LPCNet's noise shaping).

A stack with ``preemphasis = a`` models ``y[n] = x[n] − a·x[n−1]`` instead of the audio ``x``, and
its output goes through the inverse ``x[n] = y[n] + a·x[n−1]``: the model's prediction error, white
in the modelled signal, comes out shaped like the audio's own spectral tilt (quieter in the high
band, where piano partials are weak), so more of it hides under the notes. ``a = 0`` is a no-op.
"""

from __future__ import annotations

import numpy as np
import torch


def pre(audio: torch.Tensor, a: float) -> torch.Tensor:
    """``y[n] = x[n] − a·x[n−1]`` along the last axis (``x[−1] = 0``)."""
    if not a:
        return audio
    out = audio.clone()
    out[..., 1:] -= a * audio[..., :-1]
    return out


def pre_np(audio: np.ndarray, a: float) -> np.ndarray:
    """``pre`` for numpy arrays."""
    return pre(torch.from_numpy(np.asarray(audio)), a).numpy()


def de(audio: torch.Tensor, a: float) -> torch.Tensor:
    """``x[n] = y[n] + a·x[n−1]`` along the last axis (``x[−1] = 0``); the inverse of ``pre``."""
    if not a:
        return audio
    from scipy.signal import lfilter

    x = lfilter([1.0], [1.0, -a], audio.detach().cpu().numpy().astype(np.float64), axis=-1)
    return torch.from_numpy(x.astype(np.float32))
