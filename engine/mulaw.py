"""μ-law companding and 8-bit quantisation (ITU-T G.711 style, continuous form).

Class ``k`` of ``mu + 1`` classes stands for the companded value ``2k/mu - 1``; decoding a class
and encoding the result gives the same class back exactly, in torch and in numpy alike.
"""

from __future__ import annotations

import math

import numpy as np
import torch

MU = 255


def _compand_np(x: np.ndarray, mu: int) -> np.ndarray:
    return np.sign(x) * np.log1p(mu * np.abs(x)) / math.log1p(mu)


def _expand_np(y: np.ndarray, mu: int) -> np.ndarray:
    return np.sign(y) * np.expm1(np.abs(y) * math.log1p(mu)) / mu


def encode_np(audio: np.ndarray, mu: int = MU) -> np.ndarray:
    """Float audio in [-1, 1] → int64 classes in [0, mu]. Values outside [-1, 1] are clipped."""
    y = _compand_np(np.clip(np.asarray(audio, dtype=np.float64), -1.0, 1.0), mu)
    return np.rint((y + 1.0) * (mu / 2.0)).astype(np.int64)


def decode_np(classes: np.ndarray, mu: int = MU) -> np.ndarray:
    """Int classes in [0, mu] → float32 audio in [-1, 1]."""
    y = np.asarray(classes, dtype=np.float64) * (2.0 / mu) - 1.0
    return _expand_np(y, mu).astype(np.float32)


def encode(audio: torch.Tensor, mu: int = MU) -> torch.Tensor:
    """Float audio in [-1, 1] → long classes in [0, mu]. Values outside [-1, 1] are clipped."""
    x = audio.to(torch.float64).clamp(-1.0, 1.0)
    y = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)
    return torch.round((y + 1.0) * (mu / 2.0)).long()


def decode(classes: torch.Tensor, mu: int = MU) -> torch.Tensor:
    """Long classes in [0, mu] → float32 audio in [-1, 1]."""
    y = classes.to(torch.float64) * (2.0 / mu) - 1.0
    x = torch.sign(y) * torch.expm1(y.abs() * math.log1p(mu)) / mu
    return x.to(torch.float32)
