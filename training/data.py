"""Training data: a folder of audio as μ-law class sequences, and random segments of them.

Any WAV/FLAC/OGG under the folder (recursively), at any rate and channel count, is downmixed,
resampled with soxr and μ-law encoded. Unreadable and silence-only files are reported and skipped.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr
from tqdm import tqdm

from engine import emphasis, mulaw

from .errors import DataError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
SILENCE_PEAK = 1e-4  # a file whose peak stays below this (-80 dBFS) counts as silence


@dataclass
class Folder:
    """The usable audio of a folder: ``sequences[i]`` holds the classes of ``files[i]``."""

    root: Path
    files: list[str] = field(default_factory=list)
    sequences: list[np.ndarray] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    sample_rate: int = 16000
    audio: list[np.ndarray] = field(default_factory=list)  # float32, when loaded with keep_audio

    @property
    def samples(self) -> int:
        return sum(len(s) for s in self.sequences)

    def fingerprint(self) -> str:
        """Names and lengths of the usable files: tells whether a resumed run sees the same data."""
        blob = "\n".join(f"{f}\t{len(s)}" for f, s in zip(self.files, self.sequences, strict=True))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        return {
            "folder": str(self.root),
            "files": len(self.files),
            "seconds": round(self.samples / self.sample_rate, 1),
            "skipped": [{"file": f, "reason": r} for f, r in self.skipped],
            "fingerprint": self.fingerprint(),
        }


def audio_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())


def read_mono(path: Path, sample_rate: int) -> np.ndarray:
    """Float32 mono audio of ``path`` at ``sample_rate``."""
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ").astype(np.float32)
    return mono


def load_folder(root: Path, *, sample_rate: int, mu: int = 255, preemphasis: float = 0.0,
                show_progress: bool = False, keep_audio: bool = False) -> Folder:
    """The usable audio under ``root`` as the μ-law classes a stack models (pre-emphasised by
    ``preemphasis``, see engine.emphasis), and as float32 audio with ``keep_audio``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}")
    paths = audio_files(root)
    if not paths:
        raise DataError(f"{root} holds no audio files ({', '.join(AUDIO_SUFFIXES)}, searched recursively)")
    folder = Folder(root=root, sample_rate=sample_rate)
    for path in tqdm(paths, desc="read audio", unit="file", disable=not show_progress):
        name = str(path.relative_to(root))
        try:
            audio = read_mono(path, sample_rate)
        except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as exc:
            folder.skipped.append((name, f"unreadable: {exc}"))
            continue
        if not np.isfinite(audio).all():
            folder.skipped.append((name, "holds NaN or infinite samples"))
            continue
        if audio.size == 0 or float(np.abs(audio).max()) < SILENCE_PEAK:
            folder.skipped.append((name, "silence only"))
            continue
        folder.files.append(name)
        if keep_audio:
            folder.audio.append(np.clip(audio, -1.0, 1.0))
        modelled = emphasis.pre_np(np.clip(audio, -1.0, 1.0), preemphasis)
        folder.sequences.append(mulaw.encode_np(modelled, mu).astype(np.uint8))
    if not folder.files:
        reasons = "; ".join(f"{f}: {r}" for f, r in folder.skipped[:5])
        raise DataError(f"{root} holds no usable audio ({reasons})")
    return folder


class SegmentSampler:
    """Random (batch, segment) windows of a list of sequences, from a numpy generator.

    A window never crosses a file boundary; files are chosen in proportion to how many windows
    they hold. The generator's state is the data position a checkpoint saves.
    """

    def __init__(self, sequences: list[np.ndarray], *, segment: int, batch: int, seed: Any) -> None:
        self.usable = [s for s in sequences if len(s) >= segment]
        if not self.usable:
            longest = max((len(s) for s in sequences), default=0)
            raise DataError(
                f"no sequence is as long as one segment ({segment} elements; the longest has "
                f"{longest}): lower the stage's segment or add longer audio"
            )
        starts = np.array([len(s) - segment + 1 for s in self.usable], dtype=np.float64)
        self.weights = starts / starts.sum()
        self.segment, self.batch = segment, batch
        self.rng = np.random.Generator(np.random.PCG64(seed))

    def next(self) -> np.ndarray:
        picks = self.rng.choice(len(self.usable), size=self.batch, p=self.weights)
        out = np.empty((self.batch, self.segment), dtype=np.int64)
        for row, i in enumerate(picks):
            seq = self.usable[i]
            start = int(self.rng.integers(0, len(seq) - self.segment + 1))
            out[row] = seq[start : start + self.segment]
        return out

    @property
    def state(self) -> dict[str, Any]:
        return self.rng.bit_generator.state

    @state.setter
    def state(self, value: dict[str, Any]) -> None:
        self.rng.bit_generator.state = value
