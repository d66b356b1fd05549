"""Frozen, keyword-only model configs with strict dict round trips (unknown keys are errors)."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from .errors import ConfigError

T = TypeVar("T")
MAX_TEMPERATURE = 10.0  # of any sampling: a track's, a level's


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {type(value).__name__}")
        return from_dict(tp, value, where)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, allowed))}")
        return value
    if origin is tuple:
        (item_tp, _ellipsis) = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        return tuple(_convert(item_tp, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (types.UnionType, typing.Union):  # only ``X | None``: the key may be null
        (item_tp,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _convert(item_tp, value, where)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp in (str, bool) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys, bad types and bad values raise."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(names))}"
        )
    kwargs = {k: _convert(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required key is missing
        raise ConfigError(f"{where}: {exc}") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain, JSON/TOML-ready dict of a config (tuples become lists)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        return v

    return plain(cfg)


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


@dataclass(frozen=True, kw_only=True)
class NetConfig:
    """Shape of a WaveNet: residual/skip widths and dilations 1, 2, 4, … restarting every ``cycle``.

    ``lpc_order`` > 0 (audio decoders only) centres the net on a linear prediction of each sample
    (engine.lpc): the prediction is an input, and the output classes are counted from the
    prediction's class, so the net models the excitation around it. ``lpc_source``: ``past``
    fits the predictor to the previous samples (backward-adaptive), ``codes`` takes it from the
    level's codes (per frame, stable by construction; a level decoder only). ``lpc_centre``:
    ``classes`` counts the output classes from the prediction's class; ``logistic`` (codes only)
    adds to the output logits a discretised logistic around the prediction whose linear width
    comes from the codes, so the excitation's size does not grow with the prediction's;
    ``input`` gives the prediction as an input only (output classes stay in class order).
    """

    residual: int = 32
    skip: int = 128
    layers: int = 10
    cycle: int = 10
    lpc_order: int = 0
    lpc_source: Literal["past", "codes"] = "past"
    lpc_centre: Literal["classes", "logistic", "input"] = "classes"

    def __post_init__(self) -> None:
        for name in ("residual", "skip", "layers", "cycle"):
            _check(getattr(self, name) >= 1, f"net.{name} must be ≥ 1, got {getattr(self, name)}")
        _check(self.cycle <= 16, f"net.cycle must be ≤ 16 (dilation 32768), got {self.cycle}")
        _check(0 <= self.lpc_order <= 64, f"net.lpc_order must be in [0, 64], got {self.lpc_order}")
        _check(self.lpc_centre != "logistic" or self.lpc_source == "codes",
               "net.lpc_centre = logistic needs lpc_source = codes (its width comes from the codes)")

    @property
    def dilations(self) -> tuple[int, ...]:
        return tuple(2 ** (i % self.cycle) for i in range(self.layers))

    @property
    def receptive_field(self) -> int:
        """Number of past elements a prediction can see (the input shift adds one)."""
        return sum(self.dilations) + 1


@dataclass(frozen=True, kw_only=True)
class QuantizerConfig:
    """``vq``: EMA vector quantiser; ``argmax``: AMAE simplex/argmax bottleneck (dim = codes)."""

    kind: Literal["vq", "argmax"] = "vq"
    codes: int = 512
    dim: int = 64
    decay: float = 0.99
    commitment: float = 0.25
    diversity: float = 0.001
    restart_threshold: float = 0.01

    def __post_init__(self) -> None:
        _check(self.codes >= 2, f"quantizer.codes must be ≥ 2, got {self.codes}")
        _check(self.dim >= 1, f"quantizer.dim must be ≥ 1, got {self.dim}")
        _check(0.0 < self.decay < 1.0, f"quantizer.decay must be in (0, 1), got {self.decay}")

    @property
    def code_dim(self) -> int:
        return self.codes if self.kind == "argmax" else self.dim


@dataclass(frozen=True, kw_only=True)
class SamplingConfig:
    """How a level's decoder is sampled: part of the trained model (``eval`` measures it, the
    model hash covers it). ``temperature``/``top_p``: this level's own, whatever the track's
    (None: the track's, which then shape only the levels and prior that name none).
    ``lpc_bandwidth`` < 1 widens the backward-adaptive predictor's resonances while sampling (its
    coefficients times ``lpc_bandwidth ** (i + 1)``, as speech codecs do); training always fits
    the sharp one. A mismatch on purpose, like LPCNet's sharpening: fitted to the decoder's own
    samples, sharp resonances sustain themselves as rising tones (docs/training-notes.md, A/B 15).

    ``loud_db`` gates the sampling by how loud the level plays: wherever the predictor's window
    (the last 1,024 samples, measured every 128) is louder than this RMS level (dBFS), the level
    samples with ``loud_temperature``, ``loud_top_p`` and ``loud_lpc_bandwidth`` (None: as where it
    is quiet). Sharper where notes sound, it cleans the noise between their partials; left as it is
    where the level is quiet, a rest can still turn into the next note (A/B 19; LPCNet sharpens
    voiced frames only, for the same reason).
    """

    temperature: float | None = None
    top_p: float | None = None
    lpc_bandwidth: float = 1.0
    loud_db: float | None = None
    loud_temperature: float | None = None
    loud_top_p: float | None = None
    loud_lpc_bandwidth: float | None = None

    def __post_init__(self) -> None:
        for name in ("temperature", "loud_temperature"):
            value = getattr(self, name)
            _check(value is None or 0.0 < value <= MAX_TEMPERATURE,
                   f"sampling.{name} must be in (0, {MAX_TEMPERATURE:g}], got {value}")
        for name in ("top_p", "loud_top_p"):
            value = getattr(self, name)
            _check(value is None or 0.0 < value <= 1.0, f"sampling.{name} must be in (0, 1], got {value}")
        for name in ("lpc_bandwidth", "loud_lpc_bandwidth"):
            value = getattr(self, name)
            _check(value is None or 0.9 <= value <= 1.0, f"sampling.{name} must be in [0.9, 1], got {value}")
        _check(self.loud_db is None or -120.0 <= self.loud_db <= 0.0,
               f"sampling.loud_db must be in [-120, 0] dBFS, got {self.loud_db}")
        loud = (self.loud_temperature, self.loud_top_p, self.loud_lpc_bandwidth)
        _check(self.loud_db is not None or all(v is None for v in loud),
               "sampling.loud_temperature, loud_top_p and loud_lpc_bandwidth need loud_db")

    def draw(self, temperature: float, top_p: float) -> tuple[tuple[float, float], tuple[float, float]]:
        """(temperature, top-p) of this level where it plays quietly and where it plays loud, given
        the track's."""
        quiet = (temperature if self.temperature is None else self.temperature,
                 top_p if self.top_p is None else self.top_p)
        loud = (quiet[0] if self.loud_temperature is None else self.loud_temperature,
                quiet[1] if self.loud_top_p is None else self.loud_top_p)
        return quiet, loud


@dataclass(frozen=True, kw_only=True)
class LevelConfig:
    """One autoregressive discrete autoencoder level: encoder strides, bottleneck, decoder."""

    strides: tuple[int, ...] = (2, 2, 2)
    encoder_channels: int = 64
    encoder_blocks: int = 1
    encoder_dilated: bool = False  # block i after each stride dilated 2^i: a wider view per code
    # what the encoder reads: the classes themselves, or (level 1 only) log-mel frames of the audio,
    # one per code (window mel_window samples): codes that cannot carry the waveform's phase
    encoder_input: Literal["classes", "mel"] = "classes"
    mel_bands: int = 64
    mel_window: int = 512
    cond_channels: int = 64
    # dilated blocks (2, 4, 8, … frames) after the conditioning's first: the decoder then sees
    # 2 + 2 + 4 + … frames of codes either side of its own (each starts as the identity)
    cond_context_blocks: int = 0
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)
    decoder: NetConfig = field(default_factory=NetConfig)
    # > 0: the level also pays for its codes' description length — their cross-entropy under a
    # small causal WaveNet over the codes, trained with it — times ``rate`` (1: the audio's and the
    # codes' total bits), so its codes stay predictable to a prior (argmax codes only)
    rate: float = 0.0
    sampling: SamplingConfig = field(default_factory=SamplingConfig)

    def __post_init__(self) -> None:
        _check(self.rate >= 0.0, f"level.rate must be ≥ 0, got {self.rate}")
        _check(self.rate == 0.0 or self.quantizer.kind == "argmax", "level.rate needs argmax codes")
        _check(len(self.strides) >= 1, "level.strides must name at least one stride")
        fits_past = self.decoder.lpc_order > 0 and self.decoder.lpc_source == "past"
        _check(self.sampling.loud_db is None or fits_past,
               "sampling.loud_db needs a decoder whose predictor fits the past "
               "(lpc_order > 0, lpc_source = past)")
        _check(all(s >= 1 for s in self.strides), f"level.strides must be ≥ 1: {self.strides}")
        _check(self.hop >= 2, f"a level must downsample (hop ≥ 2), got hop {self.hop}")
        _check(self.encoder_channels >= 1 and self.cond_channels >= 1, "channels must be ≥ 1")
        _check(0 <= self.cond_context_blocks <= 10,
               f"cond_context_blocks must be in [0, 10], got {self.cond_context_blocks}")
        _check(8 <= self.mel_bands <= 256, f"mel_bands must be in [8, 256], got {self.mel_bands}")
        _check(self.mel_window >= 2 * self.hop and self.mel_window & (self.mel_window - 1) == 0,
               f"mel_window must be a power of two ≥ twice the hop, got {self.mel_window}")

    @property
    def hop(self) -> int:
        hop = 1
        for s in self.strides:
            hop *= s
        return hop


@dataclass(frozen=True, kw_only=True)
class StackConfig:
    """Levels 1..N (level 1 reads μ-law audio) and a WaveNet prior over the top level's codes."""

    sample_rate: int = 16000
    mu: int = 255
    levels: tuple[LevelConfig, ...] = (LevelConfig(),)
    prior: NetConfig = field(default_factory=NetConfig)
    prior_global_classes: int = 0
    # models y[n] = x[n] − a·x[n−1] and de-emphasises what it makes (engine/emphasis.py); 0: off
    preemphasis: float = 0.0

    def __post_init__(self) -> None:
        _check(0.0 <= self.preemphasis < 1.0, f"preemphasis must be in [0, 1), got {self.preemphasis}")
        _check(8000 <= self.sample_rate <= 192000, f"sample_rate {self.sample_rate} not supported")
        _check(self.mu == 255, f"mu must be 255 (8-bit μ-law), got {self.mu}")
        _check(1 <= len(self.levels) <= 4, f"a stack has 1 to 4 levels, got {len(self.levels)}")
        _check(self.prior_global_classes >= 0, "prior_global_classes must be ≥ 0")
        _check(all(lv.encoder_input == "classes" for lv in self.levels[1:]),
               "encoder_input = \"mel\" reads audio: only level 1's encoder may set it")
        above = [lv.decoder.lpc_order for lv in self.levels[1:]] + [self.prior.lpc_order]
        _check(not any(above), "lpc_order applies to audio: only level 1's decoder may set it")

    @property
    def hops(self) -> tuple[int, ...]:
        """Cumulative hop of each level in audio samples (level 1 first)."""
        out, total = [], 1
        for level in self.levels:
            total *= level.hop
            out.append(total)
        return tuple(out)
