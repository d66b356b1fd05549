"""Log-mel spectrogram frames in torch (no torchaudio): what a phase-free encoder reads.

A frame per code: the STFT's hop is the level's hop, its window is centred on the code's first
sample, and the magnitudes are pooled by triangular mel filters (Slaney's formula: linear below
1 kHz, logarithmic above). The result does not change when the waveform's phase does, so codes
made from it describe pitch, loudness and timbre, and the decoder above them supplies the phase.
"""

from __future__ import annotations

import math

import torch

FLOOR = 1e-5  # magnitudes below this (about -100 dBFS per bin) are the same silence


def hz_to_mel(hz: float) -> float:
    """Slaney's mel scale: linear to 1 kHz (15 mel per 200 Hz), logarithmic above."""
    if hz < 1000.0:
        return 3.0 * hz / 200.0
    return 15.0 + 27.0 * math.log(hz / 1000.0) / math.log(6.4)


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    return torch.where(mel < 15.0, mel * 200.0 / 3.0, 1000.0 * torch.exp((mel - 15.0) * math.log(6.4) / 27.0))


def filterbank(sample_rate: int, n_fft: int, bands: int, fmin: float = 40.0,
               fmax: float | None = None) -> torch.Tensor:
    """Triangular mel filters (bands, n_fft // 2 + 1), each of unit area."""
    fmax = sample_rate / 2 if fmax is None else fmax
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise ValueError(f"need 0 ≤ fmin < fmax ≤ {sample_rate / 2} Hz, got {fmin}, {fmax}")
    edges = mel_to_hz(torch.linspace(hz_to_mel(fmin), hz_to_mel(fmax), bands + 2, dtype=torch.float64))
    bins = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - lo) / (mid - lo)
    falling = (hi - bins) / (hi - mid)
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    weights = weights / weights.sum(dim=1, keepdim=True).clamp(min=1e-12)
    return weights.float()


def log_mel(audio: torch.Tensor, *, hop: int, n_fft: int, weights: torch.Tensor) -> torch.Tensor:
    """Audio (B, T) in [-1, 1] → log-mel frames (B, bands, T // hop), frame f centred on sample f·hop."""
    frames = audio.shape[1] // hop
    window = torch.hann_window(n_fft, device=audio.device, dtype=audio.dtype)
    spec = torch.stft(audio, n_fft, hop_length=hop, window=window, center=True, pad_mode="constant",
                      return_complex=True)
    magnitude = spec.abs()[:, :, :frames]
    return torch.log(torch.clamp(torch.einsum("mf,bft->bmt", weights.to(audio.device), magnitude), min=FLOOR))
