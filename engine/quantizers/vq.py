"""Vector quantiser with EMA codebook updates (van den Oord et al. 2017, appendix A.1)."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .common import QuantizerOutput, code_stats


class VectorQuantizer(nn.Module):
    """Nearest-neighbour codebook of ``codes`` vectors of size ``dim``.

    Under ``torch.distributed`` the EMA statistics are summed over all processes and rank 0's
    initialisation and restarts are broadcast, so every replica keeps the same codebook.

    Training mode: the first batch initialises the codebook from data; every batch updates it by
    exponential moving averages (``decay``); codes whose average usage falls below
    ``restart_threshold`` are restarted on random encoder outputs of the batch. The loss is the
    commitment term ``commitment · ‖z − sg(e)‖²``; gradients pass straight through to the encoder.

    >>> vq = VectorQuantizer(codes=16, dim=4)
    >>> out = vq(torch.randn(2, 4, 10))
    >>> out.quantized.shape, out.codes.shape
    (torch.Size([2, 4, 10]), torch.Size([2, 10]))
    """

    def __init__(
        self,
        *,
        codes: int,
        dim: int,
        decay: float = 0.99,
        commitment: float = 0.25,
        restart_threshold: float = 0.01,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.num_codes, self.dim = codes, dim
        self.decay, self.commitment = decay, commitment
        self.restart_threshold, self.eps = restart_threshold, eps
        self.register_buffer("codebook", torch.randn(codes, dim))
        self.register_buffer("ema_count", torch.ones(codes))
        self.register_buffer("ema_sum", self.codebook.clone())
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, T) → vectors (B, D, T)."""
        return F.embedding(codes, self.codebook).transpose(1, 2)

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        dist = (
            flat.pow(2).sum(1, keepdim=True)
            - 2 * flat @ self.codebook.t()
            + self.codebook.pow(2).sum(1)
        )
        return dist.argmin(1)

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        batch, dim, length = z.shape
        flat = z.transpose(1, 2).reshape(-1, dim)  # (B·T, D)
        if self.training:
            self._maybe_init(flat.detach())
        codes = self.nearest(flat.detach())
        if self.training:
            self._ema_update(flat.detach(), codes)
        quant = F.embedding(codes, self.codebook)
        loss = self.commitment * F.mse_loss(flat, quant.detach())
        quant = flat + (quant - flat).detach()  # straight-through estimator
        codes = codes.view(batch, length)
        usage, perplexity = code_stats(codes, self.num_codes)
        return QuantizerOutput(
            quant.view(batch, length, dim).transpose(1, 2), codes, loss, usage, perplexity
        )

    @torch.no_grad()
    def _maybe_init(self, flat: torch.Tensor) -> None:
        if bool(self.initialized):
            return
        pick = torch.randint(0, flat.shape[0], (self.num_codes,), device=flat.device)
        self.codebook.copy_(flat[pick])
        self.ema_sum.copy_(flat[pick])
        self.ema_count.fill_(1.0)
        self.initialized.fill_(True)
        _broadcast(self.codebook, self.ema_sum)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, codes: torch.Tensor) -> None:
        onehot = F.one_hot(codes, self.num_codes).type(flat.dtype)  # (N, K)
        counts = onehot.sum(0)
        sums = onehot.t() @ flat
        if _distributed():
            dist.all_reduce(counts)
            dist.all_reduce(sums)
        self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.ema_count.sum()
        smoothed = (self.ema_count + self.eps) / (total + self.num_codes * self.eps) * total
        self.codebook.copy_(self.ema_sum / smoothed.unsqueeze(1))
        dead = self.ema_count < self.restart_threshold
        n_dead = int(dead.sum())
        if n_dead:
            pick = torch.randint(0, flat.shape[0], (n_dead,), device=flat.device)
            fresh = flat[pick] + 1e-3 * flat.std() * torch.randn_like(flat[pick])
            self.codebook[dead] = fresh
            self.ema_sum[dead] = fresh
            self.ema_count[dead] = 1.0
            _broadcast(self.codebook, self.ema_sum)  # every rank agrees on n_dead: counts are summed


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _broadcast(*tensors: torch.Tensor) -> None:
    if _distributed():
        for t in tensors:
            dist.broadcast(t, 0)
