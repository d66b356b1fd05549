"""Listening-grade evidence of an evaluation: the clips as WAV files and their spectrograms side by side.

matplotlib (a dependency of the corpus extra) draws the picture; it is imported only here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.wavfile import write_wav_atomic

from .errors import RunError

N_FFT, HOP = 1024, 256
TOP_DB = 80.0


def log_spectrogram(audio: np.ndarray) -> np.ndarray:
    """dB power (bins, frames) with a Hann window, 0 dB = a full-scale sine."""
    x = np.asarray(audio, dtype=np.float64)
    x = np.pad(x, (0, max(0, N_FFT - len(x))))
    frames = 1 + (len(x) - N_FFT) // HOP
    index = np.arange(N_FFT)[None, :] + HOP * np.arange(frames)[:, None]
    window = np.hanning(N_FFT)
    spec = np.abs(np.fft.rfft(x[index] * window, axis=1)) / (window.sum() / 2)
    return 20 * np.log10(np.maximum(spec, 1e-10)).T


def write_figures(folder: Path, clips: dict[str, np.ndarray], sample_rate: int) -> Path:
    """``folder``/NAME.wav for every clip and ``folder``/spectrograms.png; returns the PNG's path."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RunError("--figures needs matplotlib: pip install 'wavestack[corpus]'") from exc
    folder.mkdir(parents=True, exist_ok=True)
    for name, audio in clips.items():
        write_wav_atomic(folder / f"{name}.wav", np.asarray(audio, np.float32), sample_rate)
    fig, axes = plt.subplots(len(clips), 1, figsize=(10, 2.2 * len(clips)), sharex=False)
    for ax, (name, audio) in zip(np.atleast_1d(axes), clips.items(), strict=True):
        db = log_spectrogram(audio)
        seconds = len(audio) / sample_rate
        ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=-TOP_DB, vmax=0,
                  extent=(0, seconds, 0, sample_rate / 2000))
        ax.set_title(name.replace("_", " "), fontsize=9, loc="left")
        ax.set_ylabel("kHz", fontsize=8)
    np.atleast_1d(axes)[-1].set_xlabel("seconds")
    fig.tight_layout()
    path = folder / "spectrograms.png"
    tmp = path.with_name(f".{path.name}.part.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    tmp.replace(path)
    return path
