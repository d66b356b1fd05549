"""Argmax autoencoder bottleneck (AMAE, Dieleman et al. 2018, section 3.2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import QuantizerOutput, code_stats


class ArgmaxQuantizer(nn.Module):
    """Encoder outputs of ``codes`` channels → ReLU → normalised onto the simplex → one-hot argmax.

    The forward value is the one-hot code; the gradient is that of the simplex vector
    (straight-through). The diversity loss ``diversity · Σₖ (K·q̄ₖ − 1)²`` pushes the batch's mean
    code distribution q̄ towards uniform so that every code gets used.

    >>> amae = ArgmaxQuantizer(codes=8)
    >>> amae(torch.randn(2, 8, 10)).quantized.shape
    torch.Size([2, 8, 10])
    """

    def __init__(self, *, codes: int, diversity: float = 0.001, eps: float = 1e-6) -> None:
        super().__init__()
        self.num_codes, self.dim = codes, codes
        self.diversity, self.eps = diversity, eps

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, T) → one-hot vectors (B, K, T)."""
        return F.one_hot(codes, self.num_codes).float().transpose(1, 2)

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        if z.shape[1] != self.num_codes:
            raise ValueError(f"expected {self.num_codes} channels, got {z.shape[1]}")
        r = F.relu(z) + self.eps  # eps keeps an all-negative column on the simplex (uniform)
        q = r / r.sum(dim=1, keepdim=True)  # (B, K, T) on the simplex
        codes = q.argmax(dim=1)
        hard = self.lookup(codes).to(q.dtype)
        quant = hard + q - q.detach()
        mean_q = q.mean(dim=(0, 2))  # (K,)
        loss = self.diversity * (self.num_codes * mean_q - 1.0).pow(2).sum()
        usage, perplexity = code_stats(codes, self.num_codes)
        return QuantizerOutput(quant, codes, loss, usage, perplexity)
