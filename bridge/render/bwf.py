"""Broadcast WAV (EBU Tech 3285) stems: PCM 16/24-bit or 32-bit float with a ``bext`` chunk.

The ``bext`` TimeReference is the stem's position in samples since the project start, which is
how REAPER, Ardour, Logic and Pro Tools place a file "at its original position". soundfile cannot
write ``bext``, so the RIFF container is written here; the audio is plain little-endian samples.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BEXT_SIZE = 602  # fixed part of a version-2 bext chunk
PCM, IEEE_FLOAT = 1, 3


@dataclass(frozen=True)
class BextInfo:
    """The fields of a BWF bext chunk that wavestack writes and reads."""
    description: str
    originator: str
    originator_reference: str
    date: str  # yyyy-mm-dd
    time: str  # hh:mm:ss
    time_reference: int  # samples since the project start
    version: int
    coding_history: str


def _fixed(text: str, size: int) -> bytes:
    return text.encode("ascii", "replace")[:size].ljust(size, b"\0")


def bext_chunk(description: str, time_reference: int, coding_history: str = "",
               originator: str = "wavestack", reference: str = "") -> bytes:
    """A bext chunk's bytes."""
    now = time.localtime()
    body = b"".join([
        _fixed(description, 256),
        _fixed(originator, 32),
        _fixed(reference, 32),
        _fixed(time.strftime("%Y-%m-%d", now), 10),
        _fixed(time.strftime("%H:%M:%S", now), 8),
        struct.pack("<II", time_reference & 0xFFFFFFFF, time_reference >> 32),
        struct.pack("<H", 2),  # version 2: loudness fields present (left at 0 = not measured)
        b"\0" * 64,  # UMID
        b"\0" * 10,  # loudness value, range, max true peak, max momentary, max short-term
        b"\0" * 180,  # reserved
    ])
    assert len(body) == BEXT_SIZE
    history = coding_history.encode("ascii", "replace")
    body += history + (b"\0" if len(history) % 2 else b"")
    return b"bext" + struct.pack("<I", len(body)) + body


def encode_samples(audio: np.ndarray, bits: int) -> bytes:
    """(frames, channels) float audio → interleaved little-endian samples (clipped for PCM)."""
    if bits == 32:
        return np.ascontiguousarray(audio, dtype="<f4").tobytes()
    clipped = np.clip(audio, -1.0, 1.0)
    if bits == 16:
        return np.round(clipped * 32767).astype("<i2").tobytes()
    ints = np.round(clipped * 8388607).astype("<i4").reshape(-1)
    return ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()  # low three bytes of each int32


def wav_bytes(audio: np.ndarray, sample_rate: int, bits: int, bext: bytes) -> bytes:
    """A whole WAV file with a bext chunk, as bytes."""
    if audio.ndim == 1:
        audio = audio[:, None]
    if bits not in (16, 24, 32):
        raise ValueError(f"bit depth must be 16, 24 or 32 (float), got {bits}")
    frames, channels = audio.shape
    fmt_tag = IEEE_FLOAT if bits == 32 else PCM
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, sample_rate, sample_rate * block, block, bits)
    chunks = [b"fmt " + struct.pack("<I", len(fmt)) + fmt]
    if fmt_tag == IEEE_FLOAT:
        chunks.append(b"fact" + struct.pack("<II", 4, frames))
    chunks.append(bext)
    data = encode_samples(audio, bits)
    chunks.append(b"data" + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b""))
    body = b"WAVE" + b"".join(chunks)
    if len(body) > 0xFFFFFFFF - 8:
        raise ValueError("stem too large for a WAV file (4 GiB)")
    return b"RIFF" + struct.pack("<I", len(body)) + body


def write_bwf(path: Path, audio: np.ndarray, sample_rate: int, *, bits: int = 24, time_reference: int = 0,
              description: str = "", coding_history: str = "", reference: str = "",
              overwrite: bool = False) -> Path:
    """Write a BWF file atomically; by default an existing file is never replaced."""
    from engine.wavfile import atomic_output

    bext = bext_chunk(description, time_reference, coding_history, reference=reference)
    blob = wav_bytes(audio, sample_rate, bits, bext)
    with atomic_output(path, overwrite=overwrite) as fh:
        fh.write(blob)
    return Path(path)


def read_bext(path: Path) -> BextInfo:
    """The ``bext`` chunk of a WAV file (raises ValueError if it has none)."""
    with open(path, "rb") as fh:
        head = fh.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise ValueError(f"{path} is not a RIFF/WAVE file")
        while True:
            header = fh.read(8)
            if len(header) < 8:
                raise ValueError(f"{path} has no bext chunk")
            kind, size = header[:4], struct.unpack("<I", header[4:])[0]
            if kind != b"bext":
                fh.seek(size + size % 2, 1)
                continue
            body = fh.read(size)
            return _parse_bext(body, size)


def _parse_bext(body: bytes, size: int) -> BextInfo:
    def text(a: int, b: int) -> str:
        return body[a:b].split(b"\0", 1)[0].decode("ascii", "replace")

    low, high = struct.unpack("<II", body[338:346])
    return BextInfo(
        description=text(0, 256), originator=text(256, 288), originator_reference=text(288, 320),
        date=text(320, 330), time=text(330, 338), time_reference=low | (high << 32),
        version=struct.unpack("<H", body[346:348])[0], coding_history=text(BEXT_SIZE, size),
    )
