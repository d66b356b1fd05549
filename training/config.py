"""Training configuration: a TOML file with the stack to train and one table per stage.

    seed = 1
    [stack]            # the engine's StackConfig: sample_rate, mu, [[stack.levels]], [stack.prior]
    [stages.level1]    # one table per level, then [stages.prior]; [stages.baseline] is optional
    steps = 2000

Validation is strict: unknown keys, missing stages and bad values are errors that name the key.
``--set key=value`` overrides use dotted paths (list items by index: ``stack.levels.0.strides``);
the value is read as a TOML value (``3e-4``, ``[2, 4]``, ``true``) or else taken as a string.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config import StackConfig, from_dict, to_dict
from engine.errors import ConfigError

BASELINE = "baseline"  # an unconditional decoder the size of level 1's: shows the codes are used
PRIOR = "prior"


@dataclass(frozen=True, kw_only=True)
class StageConfig:
    steps: int  # 0 in a run started from a bundle (fit --init): the stage as the bundle has it
    batch: int = 8
    segment: int = 8192  # elements of the stage's input sequence per example
    lr: float = 3e-4
    lr_final: float = 3e-5  # cosine decay from lr after warmup
    warmup: int = 100
    grad_clip: float = 1.0
    checkpoint_every: int = 200  # steps; also every checkpoint_seconds of wall time
    checkpoint_seconds: float = 300.0
    log_every: int = 10
    # audio decoders only (level 1, baseline): the decoder's inputs (and a centred decoder's linear
    # prediction) are read from a copy of the audio with Gaussian noise of up to this many μ-law
    # classes (a level drawn per example, rounded to whole classes); targets stay clean, so the
    # decoder learns to recover from the errors its own samples make
    input_noise: float = 0.0
    # audio levels whose decoder reads a backward-adaptive linear prediction of its past: fit the
    # predictor to the decoder's own one-step draws (each sample drawn from the decoder given the
    # true past) instead of the true audio, as sampling fits it to what the level has drawn; the
    # decoder still reads the true past. One more forward pass a step
    predictor_draws: bool = False
    # with predictor_draws: draw as the level samples (its sampling's temperature and top-p, its
    # loudness gate read from the true past) instead of at temperature 1
    predictor_draws_as_sampled: bool = False
    # with predictor_draws: the share of each batch's examples fitted to draws (the first ones); the
    # rest keep a predictor fitted to the true audio, so the decoder still learns to use a good one
    predictor_draws_share: float = 1.0
    # levels only: the encoder (and so the codes) stays as it starts (from --init or a checkpoint);
    # only the conditioning and the decoder train. A shipped model's decoder trains further while
    # its codes, and the prior trained on them, stay valid
    freeze_codes: bool = False

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ConfigError(f"steps must be ≥ 0 (0: as the --init bundle has it), got {self.steps}")
        for name in ("batch", "segment", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if not 0 < self.lr_final <= self.lr:
            raise ConfigError(f"need 0 < lr_final ≤ lr, got lr={self.lr}, lr_final={self.lr_final}")
        if self.input_noise < 0:
            raise ConfigError(f"input_noise must be ≥ 0, got {self.input_noise}")
        if self.predictor_draws_as_sampled and not self.predictor_draws:
            raise ConfigError("predictor_draws_as_sampled needs predictor_draws = true")
        if not 0.0 < self.predictor_draws_share <= 1.0:
            raise ConfigError(f"predictor_draws_share must be in (0, 1], got {self.predictor_draws_share}")
        if self.predictor_draws_share < 1.0 and not self.predictor_draws:
            raise ConfigError("predictor_draws_share needs predictor_draws = true")
        if self.warmup < 0 or self.grad_clip <= 0 or self.checkpoint_seconds <= 0:
            raise ConfigError("warmup must be ≥ 0, grad_clip and checkpoint_seconds > 0")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    stack: StackConfig
    stages: dict[str, StageConfig] = field(default_factory=dict)
    seed: int = 0
    threads: int = 0  # torch intra-op threads per process; 0 = torch's default

    def stage_names(self) -> list[str]:
        """Stages in training order: levels bottom-up, the prior, then the optional baseline."""
        names = [f"level{i + 1}" for i in range(len(self.stack.levels))] + [PRIOR]
        return [*names, BASELINE] if BASELINE in self.stages else names

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "threads": self.threads,
            "stack": to_dict(self.stack),
            "stages": {k: to_dict(v) for k, v in self.stages.items()},
        }


def parse(data: dict[str, Any], where: str = "config") -> TrainConfig:
    known = {"seed", "threads", "stack", "stages"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}"
        )
    if "stack" not in data:
        raise ConfigError(f"{where}: missing the [stack] table")
    stack = from_dict(StackConfig, data["stack"], f"{where}.stack")
    tables = data.get("stages", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{where}.stages: expected a table")
    required = [f"level{i + 1}" for i in range(len(stack.levels))] + [PRIOR]
    allowed = [*required, BASELINE]
    unknown = sorted(set(tables) - set(allowed))
    if unknown:
        raise ConfigError(
            f"{where}.stages: unknown stage(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}"
        )
    missing = [name for name in required if name not in tables]
    if missing:
        raise ConfigError(
            f"{where}.stages: missing [stages.{missing[0]}] (every level and the prior need one)"
        )
    stages = {}
    for name in allowed:
        if name in tables:
            if not isinstance(tables[name], dict):
                raise ConfigError(f"{where}.stages.{name}: expected a table")
            stages[name] = from_dict(StageConfig, tables[name], f"{where}.stages.{name}")
            if stages[name].freeze_codes and not name.startswith("level"):
                raise ConfigError(f"{where}.stages.{name}.freeze_codes: only a level has codes to freeze")
    for key in ("seed", "threads"):
        value = data.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{where}.{key}: expected an integer ≥ 0, got {value!r}")
    return TrainConfig(stack=stack, stages=stages, seed=data.get("seed", 0), threads=data.get("threads", 0))


def load(path: Path, overrides: list[str] = ()) -> TrainConfig:
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    for item in overrides:
        apply_override(data, item)
    return parse(data, str(path))


def apply_override(data: dict[str, Any], item: str) -> None:
    """Apply one ``dotted.key=value`` to the raw config dict in place."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects key=value, got {item!r}")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    parts = key.strip().split(".")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        node = _child(node, part, ".".join(parts[: i + 1]))
    last = parts[-1]
    if isinstance(node, list):
        index = _index(node, last, key)
        node[index] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"--set {key}: {'.'.join(parts[:-1])} is not a table")


def _child(node: Any, part: str, where: str) -> Any:
    """``node[part]``, creating missing tables on the way."""
    if isinstance(node, list):
        return node[_index(node, part, where)]
    if not isinstance(node, dict):
        raise ConfigError(f"--set: {where} is not a table")
    if part not in node:
        node[part] = {}
    return node[part]


def _index(node: list[Any], part: str, where: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"--set: {where}: {part!r} is not an index of a list of {len(node)}")
    return int(part)
