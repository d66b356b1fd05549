"""Files that appear atomically: written under a temporary name in the same folder, fsynced, then
renamed (or hard-linked, when an existing file must not be replaced). Readers — a DAW watching a
folder — never see a partial file, and a full disk or a killed process leaves only the old state.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf


@contextmanager
def atomic_output(path: Path, *, overwrite: bool = True) -> Iterator[BinaryIO]:
    """Yield a binary file that becomes ``path`` only if the block completes.

    With ``overwrite=False`` an existing ``path`` raises ``FileExistsError`` and is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w+b") as fh:
            yield fh
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


def write_wav_atomic(
    path: Path,
    audio: np.ndarray,
    sample_rate: int,
    *,
    subtype: str = "FLOAT",
    comment: str | None = None,
    overwrite: bool = True,
) -> Path:
    """Write mono or (samples, channels) ``audio`` as WAV through :func:`atomic_output`."""
    with atomic_output(path, overwrite=overwrite) as fh:
        channels = 1 if audio.ndim == 1 else audio.shape[1]
        with sf.SoundFile(fh, "w", samplerate=sample_rate, channels=channels,
                          subtype=subtype, format="WAV") as snd:
            _no_peak_chunk(snd)
            if comment is not None:
                snd.comment = comment
            snd.write(audio)
    return Path(path)


SFC_SET_ADD_PEAK_CHUNK = 0x1050  # libsndfile's command: write a float file's PEAK chunk or not


def _no_peak_chunk(snd: sf.SoundFile) -> None:
    """No PEAK chunk: it carries the time of writing, so equal audio would give unequal files."""
    with contextlib.suppress(AttributeError):  # a soundfile without these internals: still a right file
        sf._snd.sf_command(snd._file, SFC_SET_ADD_PEAK_CHUNK, sf._ffi.NULL, 0)
