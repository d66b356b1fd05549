"""Tiny model configs: every test model builds and samples in well under a second."""

from __future__ import annotations

import torch

from engine.config import LevelConfig, NetConfig, QuantizerConfig, StackConfig
from engine.stack import Stack
from engine.wavenet import WaveNet

TINY_NET = NetConfig(residual=8, skip=16, layers=4, cycle=4)


def tiny_level(kind: str = "vq", codes: int = 16, strides: tuple[int, ...] = (2, 2)) -> LevelConfig:
    return LevelConfig(
        strides=strides,
        encoder_channels=8,
        cond_channels=8,
        quantizer=QuantizerConfig(kind=kind, codes=codes, dim=4),
        decoder=TINY_NET,
    )


def tiny_config(levels: int = 2, sample_rate: int = 8000) -> StackConfig:
    kinds = ["vq", "argmax", "vq"]
    return StackConfig(
        sample_rate=sample_rate,
        levels=tuple(tiny_level(kinds[i], strides=(2, 2) if i == 0 else (2,)) for i in range(levels)),
        prior=TINY_NET,
    )


def make_stack(levels: int = 2, seed: int = 0) -> Stack:
    torch.manual_seed(seed)
    return Stack(tiny_config(levels)).eval()



def make_net(layers: int, cycle: int, cond: int = 0, hop: int = 1, labels: int = 0,
             classes: int = 32, residual: int = 8, skip: int = 12, lpc_order: int = 0,
             lpc_centre: str = "classes") -> WaveNet:
    torch.manual_seed(layers * 100 + cycle)
    return WaveNet(classes=classes, residual=residual, skip=skip, layers=layers, cycle=cycle,
                   cond_channels=cond, cond_hop=hop, global_classes=labels, lpc_order=lpc_order,
                   lpc_centre=lpc_centre).eval()
