"""Pre-emphasis before μ-law, de-emphasis after: exact inverses, the model's error shaped under
the audio's spectral tilt, and a stack that models pre-emphasised audio end to end."""

import dataclasses

import numpy as np
import pytest
import soundfile as sf
import torch

from engine import emphasis, mulaw
from engine.errors import ConfigError
from engine.stack import Stack
from tests.tiny import tiny_config
from training.data import load_folder


def band_power(x: np.ndarray, lo: float, hi: float) -> float:
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    f = np.linspace(0, 0.5, len(spectrum))
    return float(spectrum[(f >= lo) & (f < hi)].mean())


def test_de_emphasis_undoes_pre_emphasis_and_zero_is_a_no_op():
    x = torch.from_numpy(np.random.default_rng(0).uniform(-0.5, 0.5, (2, 4000)).astype(np.float32))
    assert torch.allclose(emphasis.de(emphasis.pre(x, 0.85), 0.85), x, atol=1e-6)
    assert emphasis.pre(x, 0.0) is x and emphasis.de(x, 0.0) is x
    assert emphasis.pre(x, 0.85)[0, 1] == pytest.approx(float(x[0, 1] - 0.85 * x[0, 0]))


def test_an_error_made_in_the_modelled_signal_comes_out_under_the_audio_tilt():
    noise = np.random.default_rng(1).standard_normal(1 << 16).astype(np.float32) * 0.01
    shaped = emphasis.de(torch.from_numpy(noise), 0.85).numpy()
    # 1 / |1 − 0.85 e^{−jω}|²: 44× at DC, 0.29× at Nyquist — the high band gets quieter, the low louder
    assert band_power(shaped, 0.375, 0.5) < 0.4 * band_power(noise, 0.375, 0.5)
    assert band_power(shaped, 0.0, 0.02) > 10 * band_power(noise, 0.0, 0.02)


def test_a_pre_emphasised_stack_models_and_makes_audio_through_the_filters(tmp_path):
    torch.manual_seed(0)
    stack = Stack(dataclasses.replace(tiny_config(1), preemphasis=0.85)).eval()
    t = np.arange(800) / 8000
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)[None]
    classes = stack.classes(torch.from_numpy(tone))
    assert torch.equal(classes, mulaw.encode(emphasis.pre(torch.from_numpy(tone), 0.85)))
    back = stack.audio(classes).numpy()
    assert np.abs(back - tone).max() < 0.02 and np.abs(back - tone).max() > 0  # μ-law, through de-emphasis
    more = stack.continue_(tone[0], 0.01, seed=2)
    assert np.array_equal(more[0, :800], tone[0]) and np.isfinite(more).all()
    assert stack.sample(0.02, seed=1).shape == (1, 160)
    sf.write(tmp_path / "tone.wav", tone[0], 8000, subtype="FLOAT")
    data = load_folder(tmp_path, sample_rate=8000, preemphasis=0.85)
    assert np.array_equal(data.sequences[0], classes[0].numpy())  # training reads what the stack models
    with pytest.raises(ConfigError, match=r"preemphasis must be in \[0, 1\)"):
        dataclasses.replace(tiny_config(1), preemphasis=1.0)
