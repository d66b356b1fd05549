"""Tiny training set-ups: a 4-layer stack on a few seconds of synthetic 8 kHz audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

TINY_TOML = Path(__file__).with_name("tiny.toml")


def tones(seconds: float = 3.0, rate: int = 8000, seed: int = 0) -> list[np.ndarray]:
    """Three slowly modulated tones: easy to predict, so a loss curve must fall on them."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    return [
        (0.5 * np.sin(2 * np.pi * f * t) * np.sin(2 * np.pi * 0.5 * t) + 0.01 * rng.standard_normal(len(t)))
        .astype(np.float32)
        for f in (220.0, 330.0, 440.0)
    ]


@pytest.fixture
def tone_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    for i, audio in enumerate(tones()):
        sf.write(folder / f"tone{i}.wav", audio, 8000)
    return folder


@pytest.fixture
def tiny_toml() -> Path:
    return TINY_TOML
