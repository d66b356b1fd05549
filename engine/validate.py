"""Checks at the engine's boundary: each names the parameter and the range it accepts."""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

from .config import MAX_TEMPERATURE
from .errors import ParameterError

MAX_SECONDS = 3600.0
MAX_BATCH = 256


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ParameterError(f"{name} must be finite, got {value}")
    return value


def check_seconds(seconds: object, sample_rate: int) -> int:
    """Seconds in (0, 3600] → number of samples (at least one)."""
    value = _number(seconds, "seconds")
    if not 0.0 < value <= MAX_SECONDS:
        raise ParameterError(f"seconds must be in (0, {MAX_SECONDS:g}], got {value:g}")
    return max(1, round(value * sample_rate))


def check_sampling(*, seed: object, temperature: object, top_p: object, batch: object) -> None:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**63:
        raise ParameterError(f"seed must be an integer in [0, 2^63), got {seed!r}")
    t = _number(temperature, "temperature")
    if not 0.0 < t <= MAX_TEMPERATURE:
        raise ParameterError(f"temperature must be in (0, {MAX_TEMPERATURE:g}], got {t:g}")
    p = _number(top_p, "top_p")
    if not 0.0 < p <= 1.0:
        raise ParameterError(f"top_p must be in (0, 1], got {p:g}")
    if isinstance(batch, bool) or not isinstance(batch, numbers.Integral):
        raise ParameterError(f"batch must be an integer, got {batch!r}")
    if not 1 <= batch <= MAX_BATCH:
        raise ParameterError(f"batch must be in [1, {MAX_BATCH}], got {batch}")


def check_level(level: object, n_levels: int) -> None:
    if isinstance(level, bool) or not isinstance(level, numbers.Integral):
        raise ParameterError(f"level must be an integer, got {level!r}")
    if not 1 <= level <= n_levels:
        raise ParameterError(f"level must be in [1, {n_levels}] for this model, got {level}")


def check_audio(
    audio: object, name: str, model_rate: int, given_rate: int | None, *, min_samples: int
) -> torch.Tensor:
    """Mono float audio, 1-D (samples) or 2-D (batch, samples), in [-1, 1] → float32 (B, T)."""
    if given_rate is not None and given_rate != model_rate:
        raise ParameterError(
            f"{name} is at {given_rate} Hz but this model runs at {model_rate} Hz; resample it first"
        )
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu().numpy()
    if not isinstance(audio, np.ndarray):
        raise ParameterError(f"{name} must be a numpy array or torch tensor, got {type(audio).__name__}")
    if audio.dtype.kind not in "fiu":
        raise ParameterError(f"{name} must hold numbers, got dtype {audio.dtype}")
    if audio.ndim == 1:
        audio = audio[None, :]
    if audio.ndim != 2:
        raise ParameterError(f"{name} must be 1-D (samples) or 2-D (batch, samples), got {audio.shape}")
    if audio.shape[1] < min_samples:
        raise ParameterError(f"{name} needs at least {min_samples} samples, got {audio.shape[1]}")
    if audio.shape[0] > audio.shape[1]:
        raise ParameterError(
            f"{name} has shape {audio.shape}, which looks like (samples, channels); "
            "give mono audio as (samples,) or (batch, samples)"
        )
    if audio.dtype.kind != "f":
        raise ParameterError(f"{name} must be float audio in [-1, 1], got dtype {audio.dtype}")
    if not np.isfinite(audio).all():
        raise ParameterError(f"{name} contains NaN or infinite samples")
    peak = float(np.abs(audio).max())
    if peak > 1.0 + 1e-6:
        raise ParameterError(f"{name} must lie in [-1, 1] (float audio); its peak is {peak:.3g}")
    return torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
