"""WAV files that appear atomically: written under a temporary name, fsynced, then renamed."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf


def write_wav_atomic(
    path: Path,
    audio: np.ndarray,
    sample_rate: int,
    *,
    subtype: str = "FLOAT",
    comment: str | None = None,
    overwrite: bool = True,
) -> Path:
    """Write mono or (samples, channels) ``audio``; readers never see a partial file.

    With ``overwrite=False`` an existing ``path`` raises ``FileExistsError`` and is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w+b") as fh:
            channels = 1 if audio.ndim == 1 else audio.shape[1]
            with sf.SoundFile(fh, "w", samplerate=sample_rate, channels=channels,
                              subtype=subtype, format="WAV") as snd:
                if comment is not None:
                    snd.comment = comment
                snd.write(audio)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.chmod(0o644)
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if path exists: never clobbers
            tmp.unlink()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
