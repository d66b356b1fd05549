"""WaveNet over class sequences: parallel teacher-forced forward and incremental ring-buffer steps.

Position ``t`` predicts element ``t`` from elements ``< t`` (the input is shifted right by one, the
first position sees zeros) and from conditioning frame ``t // cond_hop``. Both modes use the same
weights and the same arithmetic per position, so their logits agree to float rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResidualLayer(nn.Module):
    def __init__(self, *, residual: int, skip: int, dilation: int) -> None:
        super().__init__()
        self.dilation = dilation
        self.conv = nn.Conv1d(residual, 2 * residual, kernel_size=2, dilation=dilation)
        self.res = nn.Conv1d(residual, residual, 1)
        self.skip = nn.Conv1d(residual, skip, 1)


class WaveNet(nn.Module):
    """Causal dilated WaveNet with gated units, optional local (frame-rate) and global conditioning.

    >>> net = WaveNet(classes=256, residual=8, skip=16, layers=4, cycle=4)
    >>> net(torch.zeros(2, 100, dtype=torch.long)).shape
    torch.Size([2, 256, 100])
    """

    def __init__(
        self,
        *,
        classes: int,
        residual: int,
        skip: int,
        layers: int,
        cycle: int,
        cond_channels: int = 0,
        cond_hop: int = 1,
        global_classes: int = 0,
    ) -> None:
        super().__init__()
        self.classes, self.residual, self.cond_hop = classes, residual, cond_hop
        self.embed = nn.Embedding(classes, residual)
        self.layers = nn.ModuleList(
            ResidualLayer(residual=residual, skip=skip, dilation=2 ** (i % cycle))
            for i in range(layers)
        )
        width = 2 * residual * layers  # every layer's gate bias, projected in one go
        self.cond_proj = nn.Conv1d(cond_channels, width, 1) if cond_channels else None
        self.global_embed = nn.Embedding(global_classes, width) if global_classes else None
        self.head1 = nn.Conv1d(skip, skip, 1)
        self.head2 = nn.Conv1d(skip, classes, 1)

    @property
    def receptive_field(self) -> int:
        return sum(layer.dilation for layer in self.layers) + 1

    def gate_bias(
        self, cond: torch.Tensor | None, label: torch.Tensor | None, batch: int
    ) -> torch.Tensor | None:
        """Per-frame gate biases of all layers, (B, L·2R, F) — computed once per frame."""
        bias = None
        if self.cond_proj is not None:
            if cond is None:
                raise ValueError("this WaveNet is locally conditioned: pass cond (B, C, frames)")
            bias = self.cond_proj(cond)
        if self.global_embed is not None:
            if label is None:
                raise ValueError("this WaveNet is globally conditioned: pass label (B,)")
            g = self.global_embed(label).unsqueeze(-1)
            bias = g if bias is None else bias + g
        if bias is not None and bias.shape[0] != batch:
            bias = bias.expand(batch, -1, -1)
        return bias

    def forward(
        self, x: torch.Tensor, cond: torch.Tensor | None = None, label: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Teacher-forced logits (B, K, T) for classes ``x`` (B, T); ``cond`` is (B, C, ≥T/hop)."""
        return self.run(x, self.gate_bias(cond, label, x.shape[0]))

    def run(
        self,
        x: torch.Tensor,
        bias: torch.Tensor | None,
        layer_inputs: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Forward with precomputed frame-rate gate biases; optionally collects each layer's input."""
        length = x.shape[1]
        h = self.embed(x).transpose(1, 2)  # (B, R, T)
        h = F.pad(h, (1, -1))  # shift right: position t sees x[< t]
        if bias is not None:
            bias = bias.repeat_interleave(self.cond_hop, dim=2)
            if bias.shape[2] < length:
                raise ValueError(f"conditioning covers {bias.shape[2]} steps, need {length}")
            bias = bias[:, :, :length]
        skip = 0.0
        width = 2 * self.residual
        for i, layer in enumerate(self.layers):
            if layer_inputs is not None:
                layer_inputs.append(h)
            z = layer.conv(F.pad(h, (layer.dilation, 0)))  # (B, 2R, T)
            if bias is not None:
                z = z + bias[:, i * width : (i + 1) * width]
            a, b = z.chunk(2, dim=1)
            z = torch.tanh(a) * torch.sigmoid(b)
            h = h + layer.res(z)
            skip = skip + layer.skip(z)
        return self.head2(F.relu(self.head1(F.relu(skip))))

    def incremental(
        self,
        batch: int,
        cond: torch.Tensor | None = None,
        label: torch.Tensor | None = None,
    ) -> IncrementalState:
        """A generation state with empty ring buffers (same as the zero padding of ``forward``)."""
        return IncrementalState(self, batch, self.gate_bias(cond, label, batch))


class IncrementalState:
    """Fast-WaveNet generation: one ring buffer of past layer inputs per layer, O(layers) per step.

    Call ``step(prev)`` with the classes of the previous element (``None`` at position 0); it returns
    the logits (B, K) of the current position and advances by one.
    """

    def __init__(self, net: WaveNet, batch: int, bias: torch.Tensor | None) -> None:
        p = next(net.parameters())
        self.net, self.batch, self.position = net, batch, 0
        self.bias = None if bias is None else bias.detach().transpose(1, 2).contiguous()  # (B,F,W)
        r = net.residual
        self.buffers = [p.new_zeros(layer.dilation, batch, r) for layer in net.layers]
        self.zero_input = p.new_zeros(batch, r)
        with torch.no_grad():
            # (2R, 2R) per layer: rows [past tap; current tap]; res and skip fused to (R, R + S).
            self.w_gate = [
                torch.cat([lay.conv.weight[:, :, 0].t(), lay.conv.weight[:, :, 1].t()]).contiguous()
                for lay in net.layers
            ]
            self.b_gate = [lay.conv.bias.clone() for lay in net.layers]
            self.w_res = [lay.res.weight[:, :, 0].t().contiguous() for lay in net.layers]
            self.b_res = [lay.res.bias.clone() for lay in net.layers]
            self.w_skip = torch.cat([lay.skip.weight[:, :, 0].t() for lay in net.layers]).contiguous()
            self.b_skip = sum(lay.skip.bias for lay in net.layers).clone()
            self.w_h1 = net.head1.weight[:, :, 0].t().contiguous()
            self.w_h2 = net.head2.weight[:, :, 0].t().contiguous()
            self.b_h1, self.b_h2 = net.head1.bias.clone(), net.head2.bias.clone()

    @property
    def frames(self) -> int | None:
        return None if self.bias is None else self.bias.shape[1]

    @torch.no_grad()
    def prime(self, x: torch.Tensor) -> None:
        """Fill the ring buffers from a known prefix ``x`` (B, P) in one parallel pass."""
        if self.position != 0:
            raise RuntimeError("prime() must be called on a fresh state")
        length = x.shape[1]
        if length == 0:
            return
        inputs: list[torch.Tensor] = []
        self.net.run(x, None if self.bias is None else self.bias.transpose(1, 2), inputs)
        for buf, h, layer in zip(self.buffers, inputs, self.net.layers, strict=True):
            d = layer.dilation
            for k in range(max(0, length - d), length):  # element t lives in slot t % d
                buf[k % d].copy_(h[:, :, k])
        self.position = length

    @torch.no_grad()
    def step(self, prev: torch.Tensor | None) -> torch.Tensor:
        t = self.position
        h = self.zero_input if prev is None else self.net.embed(prev)
        width = 2 * self.net.residual
        frame_bias = None
        if self.bias is not None:
            frame = t // self.net.cond_hop
            if frame >= self.bias.shape[1]:
                raise IndexError(f"conditioning covers {self.bias.shape[1]} frames; step {t} needs more")
            frame_bias = self.bias[:, frame]
        gates = []
        for i, buf in enumerate(self.buffers):
            slot = buf[t % buf.shape[0]]
            z = torch.addmm(self.b_gate[i], torch.cat([slot, h], dim=1), self.w_gate[i])
            slot.copy_(h)
            if frame_bias is not None:
                z = z + frame_bias[:, i * width : (i + 1) * width]
            a, b = z.chunk(2, dim=1)
            z = torch.tanh(a) * torch.sigmoid(b)
            gates.append(z)
            h = h + torch.addmm(self.b_res[i], z, self.w_res[i])
        skip = torch.addmm(self.b_skip, torch.cat(gates, dim=1), self.w_skip)
        out = torch.addmm(self.b_h1, F.relu(skip), self.w_h1)
        self.position = t + 1
        return torch.addmm(self.b_h2, F.relu(out), self.w_h2)
