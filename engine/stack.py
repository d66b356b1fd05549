"""A stack of ADA levels under a WaveNet prior, and the ways to make audio with it.

Sampling runs top-down: the prior samples the top codes, each level's decoder samples the
sequence below it given its codes, and level 1 ends in μ-law audio. ``continue_`` primes every
level with the encoded primer; ``vary`` keeps the codes of one level and re-samples everything
below. All operations are deterministic on CPU for a given seed and parameters.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from . import emphasis, mulaw
from .config import StackConfig
from .errors import ParameterError
from .level import Level
from .sampling import CancelFn, Progress, ProgressFn, Rng, sample_sequence
from .validate import check_audio, check_level, check_sampling, check_seconds
from .wavenet import WaveNet


class Stack(nn.Module):
    """Levels 1..N and a prior. Audio in and out is float32 numpy, shape (batch, samples)."""

    def __init__(self, cfg: StackConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.sampler = "auto"  # see sampling.sample_sequence: auto | fast | numpy | torch
        classes, levels = cfg.mu + 1, []
        for level_cfg in cfg.levels:
            levels.append(Level(level_cfg, input_classes=classes, sample_rate=cfg.sample_rate))
            classes = level_cfg.quantizer.codes
        self.levels = nn.ModuleList(levels)
        self.prior = WaveNet.from_config(
            cfg.prior, classes=classes, global_classes=cfg.prior_global_classes
        )

    @property
    def sample_rate(self) -> int:
        return self.cfg.sample_rate

    @property
    def device(self) -> torch.device:
        """Where the weights are; inputs are moved here, outputs come back as CPU tensors."""
        return next(self.parameters()).device

    @property
    def hops(self) -> tuple[int, ...]:
        """Audio samples per code at each level (level 1 first)."""
        return self.cfg.hops

    # ----------------------------------------------------------------------------- analysis
    @torch.no_grad()
    def encode(
        self,
        audio: np.ndarray | torch.Tensor,
        *,
        sample_rate: int | None = None,
        progress: ProgressFn | None = None,
        should_cancel: CancelFn | None = None,
    ) -> list[torch.Tensor]:
        """Codes of every level, level 1 first; each (B, samples // hop of that level)."""
        x = check_audio(audio, "audio", self.sample_rate, sample_rate, min_samples=self.hops[-1])
        work = Progress(len(self.levels), progress, should_cancel, interval=0.0)
        codes = self._encode_classes(self.classes(x), work)
        work.finish()
        return codes

    def classes(self, audio: torch.Tensor) -> torch.Tensor:
        """What level 1 models: the μ-law classes of the (pre-emphasised) audio, (B, T) long."""
        return mulaw.encode(emphasis.pre(audio, self.cfg.preemphasis), self.cfg.mu)

    def audio(self, classes: torch.Tensor) -> torch.Tensor:
        """The inverse of ``classes``, up to μ-law quantisation: float32 audio (B, T)."""
        return emphasis.de(mulaw.decode(classes, self.cfg.mu), self.cfg.preemphasis)

    def _encode_classes(self, classes: torch.Tensor, work: Progress | None = None) -> list[torch.Tensor]:
        codes, x = [], classes.to(self.device)
        for level in self.levels:
            x = level.encode(x)
            codes.append(x.cpu())
            if work is not None:
                work.advance()  # one parallel pass per level: checks cancel between levels
        return codes

    # ----------------------------------------------------------------------------- synthesis
    @torch.no_grad()
    def sample(
        self,
        seconds: float,
        *,
        seed: int | Sequence[int],
        temperature: float = 1.0,
        top_p: float = 1.0,
        batch: int = 1,
        label: int | None = None,
        progress: ProgressFn | None = None,
        should_cancel: CancelFn | None = None,
    ) -> np.ndarray:
        """Sample ``seconds`` of new audio from the prior down through every level.

        ``batch`` rows share one seeded stream; a list of seeds gives one row per seed instead, each
        drawing its own stream, so that row i is what ``seed=seeds[i]`` renders alone (bit for bit
        with the fast sampler, whose rows do not interact; other samplers batch matrix products,
        which can round differently) — many renders for the price of one batched pass.
        """
        n = check_seconds(seconds, self.sample_rate)
        rows = isinstance(seed, Sequence) and not isinstance(seed, str)  # one row per seed
        if rows:
            if not seed or batch not in (1, len(seed)):
                raise ParameterError(f"give batch={batch} or {len(seed)} seeds (one per row), not both")
            batch = len(seed)
        for s in seed if rows else [seed]:
            check_sampling(seed=s, temperature=temperature, top_p=top_p, batch=batch)
        top = -(-n // self.hops[-1])
        prefixes: list[torch.Tensor | None] = [None] * (len(self.levels) + 1)
        return self._generate(
            batch, top, prefixes, seed, temperature, top_p, label, progress, should_cancel
        )[:, :n]

    @torch.no_grad()
    def continue_(
        self,
        primer: np.ndarray | torch.Tensor,
        seconds: float,
        *,
        seed: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        batch: int = 1,
        sample_rate: int | None = None,
        label: int | None = None,
        progress: ProgressFn | None = None,
        should_cancel: CancelFn | None = None,
    ) -> np.ndarray:
        """The primer followed by ``seconds`` of continuation; every level is primed with it."""
        x = check_audio(primer, "primer", self.sample_rate, sample_rate, min_samples=1)
        n_new = check_seconds(seconds, self.sample_rate)
        check_sampling(seed=seed, temperature=temperature, top_p=top_p, batch=batch)
        x = _match_batch(x, batch, "primer")
        primer_len = x.shape[1]
        classes = self.classes(x)
        long_enough = primer_len >= self.levels[0].hop
        codes = self._encode_classes(classes) if long_enough else []
        prefixes: list[torch.Tensor | None] = [classes, *codes]
        prefixes += [None] * (len(self.levels) + 1 - len(prefixes))
        top = -(-(primer_len + n_new) // self.hops[-1])
        out = self._generate(
            x.shape[0], top, prefixes, seed, temperature, top_p, label, progress, should_cancel
        )
        out[:, :primer_len] = x.numpy()
        return out[:, : primer_len + n_new]

    @torch.no_grad()
    def vary(
        self,
        audio: np.ndarray | torch.Tensor,
        level: int,
        *,
        seed: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        batch: int = 1,
        sample_rate: int | None = None,
        progress: ProgressFn | None = None,
        should_cancel: CancelFn | None = None,
    ) -> np.ndarray:
        """Keep ``audio``'s codes at ``level`` (1..N) and re-sample every level below it."""
        check_level(level, len(self.levels))
        x = check_audio(audio, "audio", self.sample_rate, sample_rate, min_samples=1)
        check_sampling(seed=seed, temperature=temperature, top_p=top_p, batch=batch)
        x = _match_batch(x, batch, "audio")
        n, hop = x.shape[1], self.hops[level - 1]
        padded = torch.nn.functional.pad(x, (0, -(-n // hop) * hop - n))  # silence to a whole frame
        codes = self._encode_classes(self.classes(padded))[level - 1]
        return self.decode(
            codes, level, seed=seed, temperature=temperature, top_p=top_p,
            progress=progress, should_cancel=should_cancel,
        )[:, :n]

    @torch.no_grad()
    def decode(
        self,
        codes: torch.Tensor,
        level: int,
        *,
        seed: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        progress: ProgressFn | None = None,
        should_cancel: CancelFn | None = None,
    ) -> np.ndarray:
        """Audio (B, frames · hop) sampled from the codes (B, frames) of ``level`` downwards."""
        check_level(level, len(self.levels))
        check_sampling(seed=seed, temperature=temperature, top_p=top_p, batch=1)
        codes = _check_codes(codes, self.levels[level - 1].num_codes, level)
        prefixes: list[torch.Tensor | None] = [None] * (len(self.levels) + 1)
        return self._generate(
            codes.shape[0], 0, prefixes, seed, temperature, top_p, None, progress, should_cancel,
            known_level=level, known=codes,
        )

    # ----------------------------------------------------------------------------- core loop
    def _generate(
        self,
        batch: int,
        top_frames: int,
        prefixes: list[torch.Tensor | None],
        seed: int | Sequence[int],
        temperature: float,
        top_p: float,
        label: int | None,
        progress: ProgressFn | None,
        should_cancel: CancelFn | None,
        *,
        known_level: int | None = None,
        known: torch.Tensor | None = None,
    ) -> np.ndarray:
        """Sample every level from the top (or from the fully ``known`` level) down to audio.

        ``prefixes[k]`` is the known beginning of level k's sequence (0 = audio classes).
        """
        n_levels = len(self.levels)
        start = n_levels if known_level is None else known_level
        lengths = self._lengths(top_frames, start, known)
        nets = [lv.decoder for lv in self.levels[:start]]
        steps = [(lengths[k] - _len(prefixes[k]), len(nets[k].layers)) for k in range(start)]
        if known is None:
            steps.append((lengths[n_levels] - _len(prefixes[n_levels]), len(self.prior.layers)))
        work = Progress(sum(s * c for s, c in steps), progress, should_cancel)
        rngs = [_level_rng(seed, k) for k in range(n_levels + 1)]
        seq = known
        if seq is None:
            g = _label_tensor(label, batch, self.cfg.prior_global_classes)
            g = None if g is None else g.to(self.device)
            state = self.prior.incremental(batch, label=g)
            seq = self._extend(state, prefixes[n_levels], lengths[n_levels], rngs[n_levels],
                               temperature, top_p, work)
        for k in range(start, 0, -1):
            level = self.levels[k - 1]
            own = self.cfg.levels[k - 1].sampling  # a level that names its sampling renders with it
            cond, coef = _conditioning(level, seq.to(self.device))
            state = level.decoder.incremental(batch, cond=cond, lpc_coef=coef, sampling=own)
            quiet, loud = own.draw(temperature, top_p)
            seq = self._extend(state, prefixes[k - 1], lengths[k - 1], rngs[k - 1], *quiet, work, loud)
        work.finish()
        return self.audio(seq.cpu()).numpy()

    def _lengths(self, top_frames: int, start: int, known: torch.Tensor | None) -> list[int]:
        """Sequence length at every level 0..N for ``top_frames`` codes at the top level."""
        n_levels = len(self.levels)
        lengths = [0] * (n_levels + 1)
        lengths[start] = known.shape[1] if known is not None else top_frames
        if known is None:
            lengths[n_levels] = top_frames
        for k in range(start, 0, -1):
            lengths[k - 1] = lengths[k] * self.levels[k - 1].hop
        return lengths

    def _extend(self, state, prefix, length, rng, temperature, top_p, work, loud=None) -> torch.Tensor:
        """Level sequence of ``length``: the known ``prefix`` (primed in one pass), then sampled."""
        known = 0 if prefix is None else min(prefix.shape[1], length)
        last = None
        if known:
            prefix = prefix[:, :known]
            state.prime(prefix)
            last = prefix[:, -1]
        new = sample_sequence(state, length - known, rng, temperature=temperature, top_p=top_p,
                              progress=work, prev=last, cost=len(state.buffers), sampler=self.sampler,
                              loud=loud)
        return torch.cat([prefix, new], dim=1) if known else new


def _conditioning(level: Level, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``level``'s conditioning and predictor for ``codes``, each row computed alone: torch's kernels
    round differently by batch size, and a rounding tie would make a row's draws depend on the rows
    it shares a pass with (a batched render must be what each track renders alone)."""
    conds = [level.condition(codes[b: b + 1]) for b in range(codes.shape[0])]
    coefs = [level.lpc_coefficients(c) for c in conds]
    return _joined(conds), None if coefs[0] is None else _joined(coefs)


def _joined(rows: list[torch.Tensor]) -> torch.Tensor:
    """Rows stacked into a batch; one row as it is (no copy of a long track's features)."""
    return rows[0] if len(rows) == 1 else torch.cat(rows)


def _level_rng(seed: int | Sequence[int], level: int) -> Rng:
    """Level ``level``'s uniform stream: one generator, or one per row for a list of seeds."""
    if isinstance(seed, numbers.Integral):
        return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(level,)))
    return [_level_rng(s, level) for s in seed]


def _len(prefix: torch.Tensor | None) -> int:
    return 0 if prefix is None else prefix.shape[1]


def _match_batch(x: torch.Tensor, batch: int, name: str) -> torch.Tensor:
    if batch == 1 or x.shape[0] == batch:
        return x
    if x.shape[0] == 1:
        return x.expand(batch, -1).contiguous()
    raise ParameterError(f"{name} has {x.shape[0]} rows but batch={batch}; give one row or {batch}")


def _label_tensor(label: int | None, batch: int, classes: int) -> torch.Tensor | None:
    if classes == 0:
        if label is not None:
            raise ParameterError("this model has no labels (global conditioning); pass label=None")
        return None
    label = 0 if label is None else label
    if not isinstance(label, int) or not 0 <= label < classes:
        raise ParameterError(f"label must be an integer in [0, {classes - 1}], got {label!r}")
    return torch.full((batch,), label, dtype=torch.long)


def _check_codes(codes: torch.Tensor | np.ndarray, num_codes: int, level: int) -> torch.Tensor:
    codes = torch.as_tensor(codes)
    if codes.ndim == 1:
        codes = codes.unsqueeze(0)
    if codes.ndim != 2 or codes.shape[1] == 0 or codes.dtype.is_floating_point:
        raise ParameterError(f"codes must be integers of shape (batch, frames); got {tuple(codes.shape)}")
    if int(codes.min()) < 0 or int(codes.max()) >= num_codes:
        raise ParameterError(f"level {level} codes must lie in [0, {num_codes - 1}]")
    return codes.long()
