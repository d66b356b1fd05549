"""One autoregressive discrete autoencoder (ADA) level: encoder → quantiser → WaveNet decoder."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import lpc, mel, mulaw
from .config import LevelConfig, NetConfig
from .quantizers import ArgmaxQuantizer, VectorQuantizer
from .quantizers.common import QuantizerOutput
from .sampling import pick
from .wavenet import WaveNet


class ResBlock(nn.Module):
    """x + conv1x1(relu(conv3(relu(x)))), the 3-tap conv dilated by ``dilation``."""

    def __init__(self, channels: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class Encoder(nn.Module):
    """Class sequence (B, T) → (B, dim, T / hop): a strided conv per stride, each with res blocks."""

    def __init__(
        self, *, classes: int, channels: int, dim: int, strides: tuple[int, ...], blocks: int,
        dilated: bool = False,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(classes, channels)
        stages: list[nn.Module] = []
        for stride in strides:
            stages.append(nn.Conv1d(channels, channels, stride, stride=stride))
            stages.extend(ResBlock(channels, 2 ** i if dilated else 1) for i in range(blocks))
        self.stages = nn.Sequential(*stages)
        self.out = nn.Conv1d(channels, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(self.stages(self.embed(x).transpose(1, 2))))


class MelEncoder(nn.Module):
    """μ-law classes (B, T) → (B, dim, T / hop) from log-mel frames of the audio, one per code:
    what it sees is independent of the waveform's phase."""

    def __init__(self, *, sample_rate: int, hop: int, window: int, bands: int, channels: int, dim: int,
                 blocks: int) -> None:
        super().__init__()
        self.hop, self.window = hop, window
        self.register_buffer("weights", mel.filterbank(sample_rate, window, bands), persistent=False)
        self.inp = nn.Conv1d(bands, channels, 3, padding=1)
        self.blocks = nn.Sequential(*(ResBlock(channels) for _ in range(blocks)))
        self.out = nn.Conv1d(channels, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        audio = mulaw.decode(x, 255)
        frames = mel.log_mel(audio, hop=self.hop, n_fft=self.window, weights=self.weights)
        return self.out(F.relu(self.blocks(self.inp(frames))))


ENCODE_MARGIN = 32  # frames of context either side of an encoded chunk (more than an encoder sees)
RATE_NET = NetConfig(residual=32, skip=64, layers=8, cycle=8)  # sees 256 codes (128 ms at level 1)
CONDITION_CHUNK = 32768  # frames of codes turned into conditioning at a time


class CondNet(nn.Module):
    """Code vectors (B, D, F) → conditioning features (B, C, F), non-causal over frames.

    Codes of a level are all known before the level below is decoded, so looking at neighbouring
    frames is allowed and helps the decoder place events inside a frame. ``context_blocks``
    dilated blocks (dilations 2, 4, 8, …) widen the view to ``margin`` frames either side; each
    starts as the identity (its last convolution zero), so a level trained without them is
    unchanged when they are added, and training goes on from there.
    """

    def __init__(self, *, dim: int, channels: int, context_blocks: int = 0) -> None:
        super().__init__()
        self.inp = nn.Conv1d(dim, channels, 3, padding=1)
        self.block = ResBlock(channels)
        self.context = nn.ModuleList(ResBlock(channels, 2 ** (i + 1)) for i in range(context_blocks))
        for block in self.context:
            nn.init.zeros_(block.conv2.weight)
            nn.init.zeros_(block.conv2.bias)
        self.margin = 2 + sum(2 ** (i + 1) for i in range(context_blocks))  # frames either side

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self._blocks(self.inp(v))

    def _blocks(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block(x)
        for block in self.context:
            x = block(x)
        return F.relu(x)

    def from_one_hot(self, codes: torch.Tensor) -> torch.Tensor:
        """``forward`` of the one-hot vectors of ``codes`` (B, F), without making them: the first
        convolution of a one-hot vector is a column of its weights per tap (a 600-s render's
        one-hot level-1 codes alone would be 2.4 GB)."""
        w = self.inp.weight  # (C, K, 3)
        before, here, after = (F.embedding(codes, w[:, :, j].t()) for j in range(3))  # (B, F, C) each
        x = here + self.inp.bias
        x[:, 1:] += before[:, :-1]  # tap 0 reads the frame before (zero padding at the start)
        x[:, :-1] += after[:, 1:]
        return self._blocks(x.transpose(1, 2))


@dataclass
class LevelOutput:
    loss: torch.Tensor  # NLL (nats per element) + quantiser loss (+ the code predictor's residual)
    nll: torch.Tensor  # decoder cross-entropy, nats per element
    codes: torch.Tensor  # (B, F)
    usage: float
    perplexity: float


class Level(nn.Module):
    """ADA level over a sequence of ``input_classes`` classes (μ-law audio or the codes below)."""

    GROWABLE = "cond_net.context."  # weights a bundle may lack: blocks that start as the identity

    def __init__(self, cfg: LevelConfig, *, input_classes: int, sample_rate: int = 16000) -> None:
        super().__init__()
        self.cfg, self.hop, self.input_classes = cfg, cfg.hop, input_classes
        q = cfg.quantizer
        self.encoder: Encoder | MelEncoder
        if cfg.encoder_input == "mel":
            self.encoder = MelEncoder(sample_rate=sample_rate, hop=cfg.hop, window=cfg.mel_window,
                                      bands=cfg.mel_bands, channels=cfg.encoder_channels, dim=q.code_dim,
                                      blocks=cfg.encoder_blocks)
        else:
            self.encoder = Encoder(
                classes=input_classes,
                channels=cfg.encoder_channels,
                dim=q.code_dim,
                strides=cfg.strides,
                blocks=cfg.encoder_blocks,
                dilated=cfg.encoder_dilated,
            )
        self.quantizer: VectorQuantizer | ArgmaxQuantizer
        if q.kind == "vq":
            self.quantizer = VectorQuantizer(
                codes=q.codes,
                dim=q.dim,
                decay=q.decay,
                commitment=q.commitment,
                restart_threshold=q.restart_threshold,
            )
        else:
            self.quantizer = ArgmaxQuantizer(codes=q.codes, diversity=q.diversity)
        self.cond_net = CondNet(dim=q.code_dim, channels=cfg.cond_channels,
                                context_blocks=cfg.cond_context_blocks)
        self.decoder = WaveNet.from_config(
            cfg.decoder, classes=input_classes, cond_channels=cfg.cond_channels, cond_hop=self.hop
        )
        # a decoder centred on a prediction from codes: reflection coefficients per frame
        dec = cfg.decoder
        from_codes = dec.lpc_order and dec.lpc_source == "codes"
        width = dec.lpc_order + (dec.lpc_centre == "logistic")  # (+ the logistic's width)
        self.lpc_head = nn.Conv1d(cfg.cond_channels, width, 1) if from_codes else None
        # the codes' own predictor (training only): what their description length is measured with
        self.code_prior = WaveNet.from_config(RATE_NET, classes=q.codes) if cfg.rate > 0 else None
        self.codes_frozen = False

    def freeze_codes(self) -> Level:
        """Keep the codes as they are: the encoder, quantiser and code predictor stop training (and
        stay in eval mode), the conditioning and the decoder go on. Codes a prior was trained on
        then stay valid while the decoder trains further."""
        self.codes_frozen = True
        for module in self._code_modules():
            module.requires_grad_(False)
        return self.train(self.training)

    def _code_modules(self) -> list[nn.Module]:
        return [m for m in (self.encoder, self.quantizer, self.code_prior) if m is not None]

    def train(self, mode: bool = True) -> Level:
        super().train(mode)
        if self.codes_frozen:
            for module in self._code_modules():
                module.eval()
        return self

    @property
    def num_codes(self) -> int:
        return self.cfg.quantizer.codes

    def crop(self, x: torch.Tensor) -> torch.Tensor:
        """Drop trailing elements so the length is a whole number of frames."""
        return x[:, : (x.shape[1] // self.hop) * self.hop]

    def encode(self, x: torch.Tensor, chunk_frames: int = 4096) -> torch.Tensor:
        """Classes (B, T) → codes (B, T // hop), ``chunk_frames`` frames at a time with
        ``ENCODE_MARGIN`` frames of context either side, so memory stays bounded on long audio."""
        hop, frames = self.hop, x.shape[1] // self.hop
        if frames <= chunk_frames:
            return self.quantizer(self.encoder(self.crop(x))).codes
        codes = []
        for start in range(0, frames, chunk_frames):
            lo, hi = max(0, start - ENCODE_MARGIN), min(frames, start + chunk_frames + ENCODE_MARGIN)
            c = self.quantizer(self.encoder(x[:, lo * hop: hi * hop])).codes
            codes.append(c[:, start - lo: start - lo + min(chunk_frames, frames - start)])
        return torch.cat(codes, dim=1)

    def condition(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, F) → decoder conditioning features (B, C, F), ``CONDITION_CHUNK`` frames at a
        time (with the frames either side the network sees), so what it holds meanwhile is bounded."""
        frames = codes.shape[1]
        if frames <= CONDITION_CHUNK:
            return self._condition(codes)
        out = None  # filled chunk by chunk: no second copy of the whole (a 600-s track's is 300 MB)
        for start in range(0, frames, CONDITION_CHUNK):
            margin = self.cond_net.margin
            lo, hi = max(0, start - margin), min(frames, start + CONDITION_CHUNK + margin)
            part = self._condition(codes[:, lo:hi])
            n = min(CONDITION_CHUNK, frames - start)
            if out is None:
                out = part.new_empty((part.shape[0], part.shape[1], frames))
            out[:, :, start: start + n] = part[:, :, start - lo: start - lo + n]
        return out

    def _condition(self, codes: torch.Tensor) -> torch.Tensor:
        if isinstance(self.quantizer, ArgmaxQuantizer):  # one-hot code vectors
            return self.cond_net.from_one_hot(codes)
        return self.cond_net(self.quantizer.lookup(codes))

    def lpc_coefficients(self, cond: torch.Tensor) -> torch.Tensor | None:
        """The decoder's predictor per frame (B, order, F) from conditioning features, or None;
        a logistic centre adds its linear width as row ``order``."""
        if self.lpc_head is None:
            return None
        raw = self.lpc_head(cond)
        order = self.cfg.decoder.lpc_order
        k = 0.999 * torch.tanh(raw[:, :order])  # reflection coefficients: a stable predictor
        a = lpc.predictor_from_reflections(k.transpose(1, 2)).transpose(1, 2)
        if raw.shape[1] == order:
            return a
        scale = 0.02 * F.softplus(raw[:, order:]) + 1e-5  # about a μ-law class near -20 dBFS
        return torch.cat([a, scale], dim=1)

    def _rate(self, q: QuantizerOutput) -> torch.Tensor:
        """The code predictor's cross-entropy (which trains it) plus ``rate`` times the codes'
        expected cost under it (which trains the encoder: through the simplex vectors, as the
        straight-through code is, towards codes the past predicts)."""
        logp = F.log_softmax(self.code_prior(q.codes.detach()), dim=1)  # (B, K, F): f sees codes < f
        fit = F.nll_loss(logp, q.codes)
        cost = -(q.quantized * logp.detach()).sum(dim=1).mean()
        return fit + self.cfg.rate * cost

    def decode_logits(self, x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Teacher-forced decoder logits (B, K, T) of ``x`` (B, T) given its codes (B, ≥T/hop)."""
        cond = self.condition(codes)
        return self.decoder(x, cond, lpc_coef=self.lpc_coefficients(cond))

    @torch.no_grad()
    def one_step_draws(self, x: torch.Tensor, generator: torch.Generator | None = None,
                       as_sampled: bool = False, rows: int | None = None) -> torch.Tensor:
        """For every position of ``x`` (B, T) cropped as ``forward`` crops it, a class drawn from
        the decoder given the true past and the codes (teacher-forced). At temperature 1, or,
        ``as_sampled``, with the level's own sampling settings (a track's defaults, temperature and
        top-p 1, where it names none), sharper where its loudness gate finds the true past loud.
        Given ``rows``, only the first ``rows`` examples are drawn; the rest are ``x`` as it is."""
        x = self.crop(x)
        if rows is not None and rows < x.shape[0]:
            return torch.cat([self.one_step_draws(x[:rows], generator, as_sampled), x[rows:]])
        training = self.quantizer.training
        self.quantizer.eval()  # (a VQ codebook moves by running averages: once a step, in forward)
        try:
            codes = self.quantizer(self.encoder(x)).codes
        finally:
            self.quantizer.train(training)
        logits = self.decode_logits(x, codes).float().transpose(1, 2).reshape(-1, self.decoder.classes).cpu()
        if not as_sampled:
            return torch.multinomial(logits.softmax(dim=1), 1, generator=generator).view(x.shape).to(x.device)
        quiet, loud = self.cfg.sampling.draw(1.0, 1.0)
        u = torch.rand(logits.shape[0], generator=generator)
        drawn = pick(logits, u, *quiet)
        gate = self.loud_positions(x).reshape(-1).cpu()
        if gate.any():
            drawn[gate] = pick(logits[gate], u[gate], *loud)
        return drawn.view(x.shape).to(x.device)

    def loud_positions(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) bool: where this level samples with its loud settings, given the past ``x`` (B, T)
        (none before it), as ``lpc.Tracker`` decides it while sampling."""
        return lpc.loud_mask(x, self.cfg.sampling.loud_db)

    def forward(self, x: torch.Tensor, inputs: torch.Tensor | None = None,
                predictor_past: torch.Tensor | None = None) -> LevelOutput:
        """Training pass on classes (B, T): reconstruct ``x`` with the decoder given its codes;
        the decoder reads ``inputs`` (a noisy copy of ``x``) as the past when given, and a decoder
        that reads a linear prediction of its past has it fitted to ``predictor_past`` (its own
        ``one_step_draws``) when given. With the codes frozen the loss is the decoder's alone (and
        the predictor's fit, if it has one)."""
        x = self.crop(x)
        with torch.no_grad() if self.codes_frozen else nullcontext():
            q = self.quantizer(self.encoder(x))
        inputs = None if inputs is None else self.crop(inputs)
        cond = self.cond_net(q.quantized)
        coef = self.lpc_coefficients(cond)
        centre = pred = None
        if coef is not None:  # the code-driven prediction, computed once for the NLL and its own fit
            past = x if inputs is None else inputs
            pred = lpc.predict_from_codes(past, coef[:, : self.cfg.decoder.lpc_order], self.hop)
            centre = self.decoder.code_centres(pred, coef)
        elif predictor_past is not None and self.decoder.lpc_order:
            centre = self.decoder.centres(predictor_past)
        nll = self.decoder.nll(x, cond, inputs=inputs, lpc_coef=coef, centre=centre)
        loss = nll if self.codes_frozen else nll + q.loss
        if self.code_prior is not None and not self.codes_frozen:
            loss = loss + self._rate(q) / self.hop  # nats per code → per element, as the NLL
        if pred is not None:  # fit the predictor itself: log of its residual power (a Gaussian NLL)
            residual = torch.from_numpy(lpc.LEVELS).to(x.device)[x] - pred
            loss = loss + 0.5 * torch.log(residual.pow(2).mean() + 1e-8).float()
        return LevelOutput(loss, nll, q.codes, q.usage, q.perplexity)
