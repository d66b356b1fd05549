"""WaveNet over class sequences: parallel teacher-forced forward and incremental ring-buffer steps.

Position ``t`` predicts element ``t`` from elements ``< t`` (the input is shifted right by one, the
first position sees zeros) and from conditioning frame ``t // cond_hop``. Both modes use the same
weights and the same arithmetic per position, so their logits agree to float rounding.

A *centred* net (``lpc_order`` > 0, μ-law audio only) also gets the backward-adaptive linear
prediction of position t (engine.lpc) as an input — its continuous μ-law class coordinate ``u``,
read from an embedding table by linear interpolation — and its head scores classes counted from the
prediction's class ``c``: head output j stands for class ``(j + c - K/2) mod K``. Logits are always
returned in class order, so losses and draws need not know.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import lpc
from .config import NetConfig, SamplingConfig

# a centred net's prediction per position: u (B, T) float, c (B, T) long, prior logits (B, K, T) or None
Centre = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]


class ResidualLayer(nn.Module):
    def __init__(self, *, residual: int, skip: int, dilation: int, last: bool = False) -> None:
        super().__init__()
        self.dilation = dilation
        self.conv = nn.Conv1d(residual, 2 * residual, kernel_size=2, dilation=dilation)
        # the last layer's residual output would feed nothing: it has only its skip output
        self.res = None if last else nn.Conv1d(residual, residual, 1)
        self.skip = nn.Conv1d(residual, skip, 1)


_OLD_RES = re.compile(r"(?:^|\.)layers\.\d+\.res\.(?:weight|bias)$")


def unused_weights(names: Iterable[str], own: Collection[str]) -> list[str]:
    """The keys among ``names`` that older layouts stored and this one has dropped: the residual
    conv of a WaveNet's last layer (in bundles before format 3 and in older training checkpoints)."""
    return [k for k in names
            if k not in own and _OLD_RES.search(k) and k.replace(".res.", ".conv.") in own]


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
        lpc_order: int = 0,
        lpc_source: str = "past",
        lpc_centre: str = "classes",
    ) -> None:
        super().__init__()
        if lpc_order and classes != lpc.MU + 1:
            raise ValueError(f"a centred WaveNet models μ-law audio ({lpc.MU + 1} classes), not {classes}")
        self.classes, self.residual, self.cond_hop = classes, residual, cond_hop
        self.lpc_order, self.lpc_source, self.lpc_centre = lpc_order, lpc_source, lpc_centre
        if lpc_order and lpc_source == "codes" and not cond_channels:
            raise ValueError("a WaveNet centred on a prediction from codes must be locally conditioned")
        self.embed = nn.Embedding(classes, residual)
        self.centre_embed = nn.Embedding(classes, residual) if lpc_order else None
        self.layers = nn.ModuleList(
            ResidualLayer(residual=residual, skip=skip, dilation=2 ** (i % cycle), last=i + 1 == layers)
            for i in range(layers)
        )
        width = 2 * residual * layers  # every layer's gate bias, projected in one go
        self.cond_proj = nn.Conv1d(cond_channels, width, 1) if cond_channels else None
        self.global_embed = nn.Embedding(global_classes, width) if global_classes else None
        self.head1 = nn.Conv1d(skip, skip, 1)
        self.head2 = nn.Conv1d(skip, classes, 1)

    @classmethod
    def from_config(
        cls, cfg: NetConfig, *, classes: int, cond_channels: int = 0, cond_hop: int = 1,
        global_classes: int = 0,
    ) -> WaveNet:
        return cls(classes=classes, residual=cfg.residual, skip=cfg.skip, layers=cfg.layers,
                   cycle=cfg.cycle, cond_channels=cond_channels, cond_hop=cond_hop,
                   global_classes=global_classes, lpc_order=cfg.lpc_order, lpc_source=cfg.lpc_source,
                   lpc_centre=cfg.lpc_centre)

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
        self, x: torch.Tensor, cond: torch.Tensor | None = None, label: torch.Tensor | None = None,
        centre: Centre | None = None, *, nll: bool = False,
        inputs: torch.Tensor | None = None, lpc_coef: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Teacher-forced logits (B, K, T) for classes ``x`` (B, T); ``cond`` is (B, C, ≥T/hop).

        A centred net takes ``centre`` = (u, c) from ``centres(x)``, or computes it (from
        ``lpc_coef`` (B, order, frames) when it predicts from codes). ``nll=True`` returns the mean
        cross-entropy instead (see ``nll``; through ``forward`` so DDP sees it).
        """
        if nll:
            return self.nll(x, cond, label, inputs, lpc_coef)
        if self.lpc_order and centre is None:
            centre = self.centres(x, lpc_coef)
        return self.run(x, self.gate_bias(cond, label, x.shape[0]), centre=centre)

    def centres(self, x: torch.Tensor, lpc_coef: torch.Tensor | None = None) -> Centre:
        """The linear prediction of every position of ``x`` (B, T), as u (B, T) float, c (B, T) long
        and, for a logistic centre, the prior's logits (B, K, T); no history before ``x`` (as when
        sampling starts)."""
        if self.lpc_source == "codes":
            if lpc_coef is None:
                raise ValueError("this WaveNet predicts from codes: pass lpc_coef (B, order, frames)")
            return self.code_centres(lpc.predict_from_codes(x, lpc_coef[:, : self.lpc_order], self.cond_hop),
                                     lpc_coef)
        rows = [lpc.predict(row, self.lpc_order) for row in x.detach().cpu().numpy()]
        u = torch.from_numpy(np.stack([r[1] for r in rows])).to(x.device)
        c = torch.from_numpy(np.stack([r[2] for r in rows])).to(x.device)
        return u, c, None

    def code_centres(self, p: torch.Tensor, lpc_coef: torch.Tensor) -> Centre:
        """``centres`` of a net that predicts from codes, given its predictions ``p`` (B, T)."""
        u, c = lpc.centre_torch(p)
        if self.lpc_centre != "logistic":
            return u, c, None
        scale = lpc_coef[:, self.lpc_order].repeat_interleave(self.cond_hop, dim=1)[:, : p.shape[1]]
        return u, c, lpc.logistic_prior(p, scale).transpose(1, 2)

    def centre_input(self, u: torch.Tensor) -> torch.Tensor:
        """The prediction's input vectors (..., R): the centre table read at ``u`` by interpolation."""
        low = u.floor().clamp(0, self.classes - 2)
        frac = (u - low).unsqueeze(-1)
        low = low.long()
        w = self.centre_embed.weight
        return F.embedding(low, w) * (1.0 - frac) + F.embedding(low + 1, w) * frac

    def nll(self, x: torch.Tensor, cond: torch.Tensor | None = None, label: torch.Tensor | None = None,
            inputs: torch.Tensor | None = None, lpc_coef: torch.Tensor | None = None,
            centre: Centre | None = None) -> torch.Tensor:
        """Mean teacher-forced cross-entropy (nats per element) of ``x`` (B, T), the net reading
        ``inputs`` (default ``x``; a noisy copy in training) as the past; ``centre``: the inputs'
        ``centres`` when the caller has them already.

        A centred net's head is scored against the classes counted from each centre: the same
        number as scoring class-order logits, without reordering (B, K, T) logits and gradients.
        """
        inputs = x if inputs is None else inputs
        bias = self.gate_bias(cond, label, x.shape[0])
        if not self.lpc_order:
            return F.cross_entropy(self.run(inputs, bias), x)
        centre = self.centres(inputs, lpc_coef) if centre is None else centre
        head = self.run(inputs, bias, centre=centre, ordered=False)
        if centre[2] is not None or self.lpc_centre == "input":  # classes stay in class order
            return F.cross_entropy(head, x)
        return F.cross_entropy(head, (x - centre[1] + self.classes // 2) % self.classes)

    def run(
        self,
        x: torch.Tensor,
        bias: torch.Tensor | None,
        layer_inputs: list[torch.Tensor] | None = None,
        centre: Centre | None = None,
        ordered: bool = True,
    ) -> torch.Tensor:
        """Forward with precomputed frame-rate gate biases; optionally collects each layer's input.

        ``ordered=False`` leaves a centred net's head outputs counted from the centre classes.
        """
        length = x.shape[1]
        h = self.embed(x).transpose(1, 2)  # (B, R, T)
        h = F.pad(h, (1, -1))  # shift right: position t sees x[< t]
        if self.lpc_order:
            if centre is None:
                raise ValueError("a centred WaveNet's run needs centre=(u, c) (see centres)")
            u, c, prior = centre
            h = h + self.centre_input(u).transpose(1, 2)  # the prediction of t is known at t
        biases: tuple[torch.Tensor, ...] = ()
        frames = -(-length // self.cond_hop)
        if bias is not None:
            if bias.shape[2] < frames:
                raise ValueError(
                    f"conditioning covers {bias.shape[2] * self.cond_hop} steps, need {length}"
                )
            # one (B, 2R, F, 1) bias per layer, broadcast over the hop: never expanded to T
            biases = bias[:, :, :frames].unsqueeze(-1).split(2 * self.residual, dim=1)
        skip = 0.0
        for i, layer in enumerate(self.layers):
            if layer_inputs is not None:
                layer_inputs.append(h)
            z = layer.conv(F.pad(h, (layer.dilation, 0)))  # (B, 2R, T)
            if biases:
                z = self._add_frame_bias(z, biases[i], frames)
            a, b = z.chunk(2, dim=1)
            z = torch.tanh(a) * torch.sigmoid(b)
            if layer.res is not None:  # (the last layer has none)
                h = h + layer.res(z)
            skip = skip + layer.skip(z)
        logits = self.head2(F.relu(self.head1(F.relu(skip))))
        if self.lpc_order and prior is not None:
            return logits + prior
        counted = self.lpc_order and self.lpc_centre == "classes"
        return self.uncentre(logits, c, dim=1) if counted and ordered else logits

    def uncentre(self, logits: torch.Tensor, c: torch.Tensor, dim: int) -> torch.Tensor:
        """Head outputs counted from the centre class ``c`` → logits in class order, along ``dim``."""
        k = self.classes
        shape = [1] * logits.dim()
        shape[dim] = k
        classes = torch.arange(k, device=logits.device).view(shape)
        index = (classes - c.unsqueeze(dim) + k // 2) % k
        return logits.gather(dim, index.expand_as(logits))

    def _add_frame_bias(self, z: torch.Tensor, bias: torch.Tensor, frames: int) -> torch.Tensor:
        """``z`` (B, C, T) plus ``bias`` (B, C, F, 1) held for ``cond_hop`` steps per frame."""
        batch, channels, length = z.shape
        padded = frames * self.cond_hop
        if padded != length:
            z = F.pad(z, (0, padded - length))
        z = (z.view(batch, channels, frames, self.cond_hop) + bias).view(batch, channels, padded)
        return z[:, :, :length] if padded != length else z

    def incremental(
        self,
        batch: int,
        cond: torch.Tensor | None = None,
        label: torch.Tensor | None = None,
        lpc_coef: torch.Tensor | None = None,
        sampling: SamplingConfig | None = None,
    ) -> IncrementalState:
        """A generation state with empty ring buffers (same as the zero padding of ``forward``);
        ``sampling``: the level's, whose predictor settings (bandwidth, loud gate) it applies."""
        return IncrementalState(self, batch, cond, label, lpc_coef, sampling)


BIAS_WINDOW = 4096  # frames of gate biases held at once (level 1 of the default: 2 s of audio)


class FrameBiases:
    """All layers' gate biases per frame, (frames, L, B, 2R), computed ``BIAS_WINDOW`` frames at a
    time from the conditioning, which is ten times narrower: a 600-s render holds two seconds of
    them, not the whole track. Windows start at multiples of ``BIAS_WINDOW`` and are always computed
    that wide (the last one padded), so every sampler and every row gets bit-identical biases."""

    def __init__(self, net: WaveNet, batch: int, cond: torch.Tensor | None, label: torch.Tensor | None,
                 half: torch.Tensor) -> None:
        self.net, self.batch, self.label, self.half = net, batch, label, half
        self.cond = None if cond is None else cond.detach()
        self.frames = 1 if cond is None else cond.shape[2]
        self.conv_bias = torch.cat([lay.conv.bias for lay in net.layers]).detach().view(1, -1, 1)
        scale = half.repeat(len(net.layers))  # (L·2R,): the sigmoid halves scaled, as the steps want
        if net.cond_proj is not None:  # the projection and every bias, scaled once (× 0.5 is exact)
            self.weight = (net.cond_proj.weight[:, :, 0] * scale[:, None]).detach()
            self.bias = ((net.cond_proj.bias + self.conv_bias.view(-1)) * scale).detach()
        self.scale = scale
        self.base, self.window = -1, torch.empty(0)

    def at(self, frame: int) -> tuple[int, torch.Tensor]:
        """``(base, window)``: the window holding ``frame``, whose first frame is ``base``."""
        if not 0 <= frame - self.base < self.window.shape[0]:
            if frame >= self.frames:
                raise IndexError(f"conditioning covers {self.frames} frames; frame {frame} needed")
            self.base = frame - frame % BIAS_WINDOW
            self.window = self._compute(self.base)
        return self.base, self.window

    @torch.no_grad()
    def _compute(self, base: int) -> torch.Tensor:
        net, layers, r = self.net, len(self.net.layers), self.net.residual
        if self.cond is None:
            bias = net.gate_bias(None, self.label, self.batch)
            frames = self.conv_bias.expand(self.batch, -1, 1) if bias is None else bias + self.conv_bias
            batch = frames.shape[0]
            return (frames.reshape(batch, layers, 2 * r, -1).permute(3, 1, 0, 2) * self.half).contiguous()
        part = self.cond[:, :, base: base + BIAS_WINDOW]
        n = part.shape[2]
        if n < BIAS_WINDOW:
            part = F.pad(part, (0, BIAS_WINDOW - n))
        # frames first: each frame's L·2R biases come out contiguous, so ordering them (F, L, B, 2R)
        # moves whole 2R rows (transposing a (B, L·2R, F) conv output cost ten times as much). One
        # product per row, always BIAS_WINDOW frames tall: a row's biases never depend on the batch
        frames = torch.stack([F.linear(row.t(), self.weight, self.bias) for row in part])[:, :n]
        if net.global_embed is not None:
            frames = frames + (net.global_embed(self.label) * self.scale).unsqueeze(1)
        if frames.shape[0] != self.batch:
            frames = frames.expand(self.batch, -1, -1)
        return frames.reshape(self.batch, n, layers, 2 * r).permute(1, 2, 0, 3).contiguous()


class IncrementalState:
    """Fast-WaveNet generation: one ring buffer per layer, O(layers) work per step.

    Call ``step(prev)`` with the classes of the previous element (``None`` at position 0); it returns
    the logits (B, K) of the current position and advances by one.

    Layer i's ring buffer has ``dilation`` slots; slot ``t % d`` holds the past-tap projection
    ``W_past · h[t - d]`` of that layer's input (zeros before the start, like the zero padding of
    the parallel forward). Per step the work is a handful of tiny matmuls, so dispatch overhead
    dominates; the arithmetic is arranged to need few operations: sigmoid(x) = (1 + tanh(x/2)) / 2
    lets one in-place tanh serve both gate halves (the scales are folded into the weights), the
    gate biases of all layers are summed with the conditioning once per frame, and results land in
    preallocated buffers.
    """

    def __init__(self, net: WaveNet, batch: int, cond: torch.Tensor | None = None,
                 label: torch.Tensor | None = None, lpc_coef: torch.Tensor | None = None,
                 sampling: SamplingConfig | None = None) -> None:
        p = next(net.parameters())
        layers, r = len(net.layers), net.residual
        self.net, self.batch, self.position, self.hop = net, batch, 0, net.cond_hop
        # a centred net's linear predictor, fed with every drawn sample (shared by all samplers)
        self.lpc_coef = None if lpc_coef is None else lpc_coef.detach()
        self.tracker: lpc.Tracker | lpc.CodeTracker | None = None
        if net.lpc_order and net.lpc_source == "codes":
            if lpc_coef is None:
                raise ValueError("this WaveNet predicts from codes: pass lpc_coef (B, order, frames)")
            coef = self.lpc_coef.expand(batch, -1, -1).permute(2, 0, 1).to(torch.float64)
            self.tracker = lpc.CodeTracker(coef[:, :, : net.lpc_order].cpu().numpy(), net.cond_hop)
            if net.lpc_centre == "logistic":  # (F, B): the prior's linear width per frame
                self.lpc_scale = coef[:, :, net.lpc_order].to(torch.float32)
        elif net.lpc_order:
            own = SamplingConfig() if sampling is None else sampling
            self.tracker = lpc.Tracker(batch, net.lpc_order, own.lpc_bandwidth, own.loud_db,
                                       own.loud_lpc_bandwidth)
        if net.cond_proj is not None and cond is None:
            raise ValueError("this WaveNet is locally conditioned: pass cond (B, C, frames)")
        self.conditioned = cond is not None
        self.dilations = [layer.dilation for layer in net.layers]
        # all layers' slots in one tensor (the fast sampler works on it in place); buffers are views
        self.ring = p.new_zeros(sum(self.dilations), batch, 2 * r)
        self.buffers = list(self.ring.split(self.dilations))
        self.zero_input = p.new_zeros(batch, r)
        self.z = [p.new_empty(batch, 2 * r) for _ in range(layers)]
        self.gates = p.new_zeros(batch, layers * r)  # every layer's gate output, side by side
        self.views = [(z[:, :r], z[:, r:], self.gates[:, i * r : (i + 1) * r])
                      for i, z in enumerate(self.z)]
        half = torch.cat([p.new_ones(r), p.new_full((r,), 0.5)])  # scales the sigmoid half
        with torch.no_grad():
            self.w_past = [(lay.conv.weight[:, :, 0].t() * half).contiguous() for lay in net.layers]
            self.w_cur = [(lay.conv.weight[:, :, 1].t() * half).contiguous() for lay in net.layers]
            self.biases = FrameBiases(net, batch, cond, label, half)
            self.w_res = [0.5 * lay.res.weight[:, :, 0].t().contiguous() for lay in net.layers[:-1]]
            self.b_res = [lay.res.bias.detach().clone() for lay in net.layers[:-1]]
            self.w_skip = 0.5 * torch.cat([lay.skip.weight[:, :, 0].t() for lay in net.layers])
            self.b_skip = sum(lay.skip.bias for lay in net.layers).detach().clone()
            self.embed = net.embed.weight.detach()
            self.w_h1 = net.head1.weight[:, :, 0].t().contiguous()
            self.w_h2 = net.head2.weight[:, :, 0].t().contiguous()
            self.b_h1, self.b_h2 = net.head1.bias.detach(), net.head2.bias.detach()
        self._frame, self._biases = -1, ()

    def loud_rows(self) -> np.ndarray | None:
        """(B,) bool: the rows whose predictor window was louder than the level's ``loud_db`` at its
        last refit; None when the level's sampling names no such gate."""
        tracker = self.tracker
        if not isinstance(tracker, lpc.Tracker) or tracker.loud_power == float("inf"):
            return None
        return tracker.loud[:, 0]

    @torch.no_grad()
    def prime(self, x: torch.Tensor) -> None:
        """Fill the ring buffers from a known prefix ``x`` (B, P) in one parallel pass."""
        if self.position != 0:
            raise RuntimeError("prime() must be called on a fresh state")
        length = x.shape[1]
        if length == 0:
            return
        x = x.to(self.embed.device)
        # the ring buffers hold each layer's last ``dilation`` inputs, which see at most the
        # receptive field before them: a long primer is run from there (a frame boundary) only
        start = max(0, length - self.net.receptive_field - max(self.dilations))
        start -= start % self.hop if self.conditioned else 0
        centre = None
        if self.tracker is not None:  # the prediction is made from the whole primer, then cut
            u, c, prior = self.net.centres(x, self.lpc_coef)
            centre = u[:, start:], c[:, start:], None if prior is None else prior[..., start:]
        b = self.biases
        cond = None if b.cond is None else b.cond[:, :, start // self.hop: -(-length // self.hop)]
        inputs: list[torch.Tensor] = []
        self.net.run(x[:, start:], self.net.gate_bias(cond, b.label, self.batch), inputs, centre=centre)
        for buf, h, d, w in zip(self.buffers, inputs, self.dilations, self.w_past, strict=True):
            for k in range(max(0, length - d), length):  # element t lives in slot t % d
                torch.mm(h[:, :, k - start], w, out=buf[k % d])
        if self.tracker is not None:
            self.tracker.prime(x.cpu().numpy())
        self.position = length

    def step(self, prev: torch.Tensor | None) -> torch.Tensor:
        """Logits (B, K) of the current position; call under ``torch.inference_mode()``."""
        t = self.position
        h = self.zero_input if prev is None else torch.embedding(self.embed, prev.to(self.embed.device))
        if self.tracker is not None:
            u, centre, pred = self.tracker.step(t, None if prev is None else prev.cpu().numpy())
            h = h + self.net.centre_input(torch.from_numpy(u).to(h.device))
        frame = t // self.hop if self.conditioned else 0
        if frame != self._frame:
            base, window = self.biases.at(frame)
            self._frame, self._biases = frame, window[frame - base].unbind(0)
        for i, (a, b, g) in enumerate(self.views):
            z, slot = self.z[i], self.buffers[i][t % self.dilations[i]]
            torch.addmm(self._biases[i], h, self.w_cur[i], out=z)
            z.add_(slot).tanh_()
            torch.mm(h, self.w_past[i], out=slot)  # this input's past tap, used d steps later
            torch.addcmul(a, a, b, out=g)  # 2 · tanh(a) · sigmoid(b)
            if i < len(self.w_res):  # the last layer's output goes to the skip sum only
                h = torch.addmm(self.b_res[i], g, self.w_res[i]).add_(h)
        skip = torch.addmm(self.b_skip, self.gates, self.w_skip)
        out = torch.addmm(self.b_h1, skip.relu_(), self.w_h1)
        self.position = t + 1
        logits = torch.addmm(self.b_h2, out.relu_(), self.w_h2)
        if self.tracker is not None and self.net.lpc_centre == "logistic":
            scale = self.lpc_scale[t // self.hop].to(logits.device)
            logits = logits + lpc.logistic_prior(torch.from_numpy(pred).to(logits.device), scale)
        elif self.tracker is not None and self.net.lpc_centre == "classes":
            logits = self.net.uncentre(logits, torch.from_numpy(centre).to(logits.device), dim=1)
        return logits
