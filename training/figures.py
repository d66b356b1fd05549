"""Listening-grade evidence of an evaluation: the clips as WAV files, their spectrograms side by
side (``spectrograms.png``, 0–8 kHz) and their energy per semitone, C2 to B6 (``notes.png``: a piano
roll, where held notes are lines and pitchless sound is a smear).

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
    _plot(plt, folder / "notes.png", clips, sample_rate, notes=True)
    return _plot(plt, folder / "spectrograms.png", clips, sample_rate, notes=False)


def _plot(plt, path: Path, clips: dict[str, np.ndarray], sample_rate: int, notes: bool) -> Path:
    from .music import HOP as NOTE_HOP
    from .music import PITCHES, semitones

    fig, axes = plt.subplots(len(clips), 1, figsize=(10, 2.2 * len(clips)), sharex=False)
    for ax, (name, audio) in zip(np.atleast_1d(axes), clips.items(), strict=True):
        seconds = len(audio) / sample_rate
        if notes:
            power = semitones(np.asarray(audio, np.float64), sample_rate).T
            db = 10 * np.log10(np.maximum(power / max(power.max(), 1e-30), 1e-10))
            frames = power.shape[1]
            ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=-60, vmax=0,
                      extent=(0, frames * NOTE_HOP / sample_rate, PITCHES[0] - 0.5, PITCHES[-1] + 0.5))
            ax.set_yticks([p for p in PITCHES if p % 12 == 0])
            ax.set_yticklabels([f"C{p // 12 - 1}" for p in PITCHES if p % 12 == 0], fontsize=7)
        else:
            ax.imshow(log_spectrogram(audio), origin="lower", aspect="auto", cmap="magma", vmin=-TOP_DB,
                      vmax=0, extent=(0, seconds, 0, sample_rate / 2000))
            ax.set_ylabel("kHz", fontsize=8)
        ax.set_title(name.replace("_", " "), fontsize=9, loc="left")
    np.atleast_1d(axes)[-1].set_xlabel("seconds")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.part.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    tmp.replace(path)
    return path
