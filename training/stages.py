"""What each stage trains and how its loss and metrics are computed.

``level{k}`` trains an ADA level on the sequence below it (μ-law audio for level 1, the codes of
level k−1 above); ``prior`` trains the top WaveNet on the top level's codes; ``baseline`` trains an
unconditional WaveNet the size of level 1's decoder on the audio, so that evaluation can show how
much the codes help.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from engine.config import StackConfig
from engine.level import Level
from engine.wavenet import WaveNet

from .config import BASELINE, PRIOR


@dataclass
class StepResult:
    loss: torch.Tensor
    bits: float  # decoder NLL in bits per element
    usage: float | None = None  # fraction of codes used in the batch (levels only)
    perplexity: float | None = None


def level_index(name: str) -> int | None:
    """0-based level of a ``level{k}`` stage, None for the prior and the baseline."""
    return int(name[5:]) - 1 if name.startswith("level") else None


def input_classes(name: str, stack: StackConfig) -> int:
    """Classes of the sequence a stage models."""
    k = level_index(name)
    if name == BASELINE or k == 0:
        return stack.mu + 1
    below = len(stack.levels) if name == PRIOR else k
    return stack.levels[below - 1].quantizer.codes


def source(name: str, stack: StackConfig) -> int:
    """Which sequence a stage reads: 0 = audio, k = the codes of level k."""
    if name == BASELINE:
        return 0
    k = level_index(name)
    return len(stack.levels) if k is None else k


def build(name: str, stack: StackConfig) -> nn.Module:
    classes = input_classes(name, stack)
    k = level_index(name)
    if k is not None:
        model: nn.Module = Level(stack.levels[k], input_classes=classes, sample_rate=stack.sample_rate)
    else:
        cfg = stack.prior if name == PRIOR else stack.levels[0].decoder
        if cfg.lpc_source == "codes":  # an unconditioned baseline can only predict from its past
            cfg = dataclasses.replace(cfg, lpc_source="past")
        model = WaveNet.from_config(cfg, classes=classes)
    return model


def step(name: str, model: nn.Module, x: torch.Tensor, inputs: torch.Tensor | None = None,
         predictor_past: torch.Tensor | None = None) -> StepResult:
    """One training step's loss on ``x``; ``inputs``: what the decoder reads instead (noisy);
    ``predictor_past``: what a level's linear predictor is fitted to instead (``Level.forward``)."""
    if level_index(name) is not None:
        out = model(x, inputs, predictor_past)
        return StepResult(out.loss, out.nll.item() / math.log(2), out.usage, out.perplexity)
    nll = model(x, nll=True, inputs=inputs)
    return StepResult(nll, nll.item() / math.log(2))


def noisy(x: torch.Tensor, classes: int, level: float, generator: torch.Generator) -> torch.Tensor:
    """``x`` (B, T) with rounded Gaussian noise, its standard deviation drawn per row in [0, level]."""
    scale = torch.rand(x.shape[0], 1, generator=generator) * level
    noise = torch.randn(x.shape, generator=generator) * scale
    return (x + noise.round().long()).clamp_(0, classes - 1)


@torch.no_grad()
def encode_sequences(
    level: Level, sequences: list[np.ndarray], *, chunk_frames: int = 4096, label: str | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[np.ndarray]:
    """Codes of every sequence, computed in overlapping chunks so memory stays bounded.

    ``label`` shows a progress bar with that title; ``should_stop`` is asked before each sequence
    (KeyboardInterrupt when it says stop: nothing is kept, the same command encodes again).
    """
    level.eval()
    out = []
    for seq in tqdm(sequences, desc=label, unit="file", disable=label is None):
        if should_stop is not None and should_stop():
            raise KeyboardInterrupt("stopped while encoding the training data; the same command "
                                    "encodes it again")
        x = torch.from_numpy(seq.astype(np.int64)).unsqueeze(0)
        codes = level.encode(x, chunk_frames)[0] if len(seq) >= level.hop else torch.zeros(0)
        out.append(codes.numpy().astype(np.int16))
    return out
