import math

import torch

from engine import mel


def tone(hz: float, phase: float = 0.0, rate: int = 16000) -> torch.Tensor:
    t = torch.arange(rate) / rate
    return 0.5 * torch.sin(2 * math.pi * hz * t + phase)[None]


def test_filters_have_unit_area_and_rise_with_frequency():
    weights = mel.filterbank(16000, 512, 64)
    assert weights.shape == (64, 257) and torch.allclose(weights.sum(1), torch.ones(64))
    centres = (weights * torch.arange(257)).sum(1)
    assert bool((centres[1:] > centres[:-1]).all())


def test_frames_follow_the_pitch_and_not_the_phase():
    weights = mel.filterbank(16000, 512, 64)

    def frames(hz: float, phase: float = 0.0) -> torch.Tensor:
        return mel.log_mel(tone(hz, phase), hop=8, n_fft=512, weights=weights)[0, :, 64:-64]

    a, shifted = frames(440), frames(440, 1.3)
    assert a.shape[0] == 64
    loud = a > a.max() - 6.0  # within 6 nats of the peak: where the tone's energy is
    assert (a - shifted)[loud].abs().max() < 0.01
    peak, octave = a.mean(1).argmax(), frames(880).mean(1).argmax()
    assert octave > peak and abs(float(frames(440)[peak].mean() - frames(880)[peak].mean())) > 3.0
    assert mel.log_mel(tone(440), hop=8, n_fft=512, weights=weights).shape[2] == 16000 // 8
