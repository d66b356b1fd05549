"""What every quantiser returns, and codebook usage statistics."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class QuantizerOutput:
    quantized: torch.Tensor  # (B, D, T) straight-through: forward = codes' vectors, grad = identity
    codes: torch.Tensor  # (B, T) long
    loss: torch.Tensor  # scalar auxiliary loss (commitment or diversity), already weighted
    usage: float  # fraction of the codebook used in this batch
    perplexity: float  # exp(entropy) of this batch's code histogram


def code_stats(codes: torch.Tensor, num_codes: int) -> tuple[float, float]:
    """(usage fraction, perplexity) of a tensor of code indices."""
    counts = torch.bincount(codes.reshape(-1), minlength=num_codes).double()
    probs = counts / counts.sum().clamp_min(1.0)
    entropy = -(probs * torch.log(probs.clamp_min(1e-12))).sum()
    return float((counts > 0).double().mean()), float(torch.exp(entropy))
