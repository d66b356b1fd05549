"""The untrained placeholder default bundle: the default stack layout with seeded random weights.

It lets a fresh install render at once (noise-like audio) until a trained model replaces it.
Regenerate with ``python -m training.placeholder --out engine/models/default``; the result is
bit-identical on every machine with the same torch version.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from engine.bundle import save_bundle
from engine.config import LevelConfig, NetConfig, QuantizerConfig, StackConfig
from engine.stack import Stack

SEED = 20181026

_LEVEL = LevelConfig(  # levels 1 and 2 share a layout: hop 8 each, 512 VQ codes, R32/S128/L10
    strides=(2, 2, 2),
    encoder_channels=64,
    cond_channels=64,
    quantizer=QuantizerConfig(kind="vq", codes=512, dim=64),
    decoder=NetConfig(residual=32, skip=128, layers=10, cycle=10),
)

DEFAULT_STACK = StackConfig(
    sample_rate=16000,
    levels=(_LEVEL, _LEVEL),
    prior=NetConfig(residual=64, skip=128, layers=20, cycle=10),
)


def build_placeholder() -> Stack:
    torch.manual_seed(SEED)
    return Stack(DEFAULT_STACK).eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="bundle directory to create")
    args = parser.parse_args(argv)
    save_bundle(
        build_placeholder(),
        args.out,
        name="default",
        trained=False,
        provenance={
            "kind": "untrained placeholder: seeded random weights, not a trained model",
            "seed": SEED,
            "command": "python -m training.placeholder --out engine/models/default",
        },
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
