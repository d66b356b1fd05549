"""Hearing a take: a file played on the default audio output through PortAudio (``sounddevice``).

The stream's callback copies the next block of the loaded file and counts the frames played; a
30-Hz timer turns that count into ``position`` signals for the playhead. A machine without an
audio output (no PortAudio library, no device) gets a one-line ``failed`` message, not a crash.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import soundfile as sf
from PySide6.QtCore import QObject, QTimer, Signal


class Player(QObject):
    """Plays one file at a time; ``position`` (path, seconds) while playing, ``stopped`` (path) after."""

    position = Signal(str, float)
    stopped = Signal(str)
    failed = Signal(str)
    _played_out = Signal(int)  # from the audio thread (the stream's number): queued to this thread

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.path = ""
        self._stream: Any = None
        self._audio = np.zeros((0, 1), np.float32)
        self._rate = 1
        self._frame = 0
        self._number = 0  # of the stream playing: a stream that ends late must not stop the next one
        self._lock = threading.Lock()
        self._timer = QTimer(self, interval=33, timeout=self._tick)
        self._played_out.connect(self._ended)

    @property
    def playing(self) -> bool:
        return self._stream is not None

    def duration(self) -> float:
        """Length of the file playing (or last played), in seconds."""
        return len(self._audio) / self._rate

    def seconds(self) -> float:
        """Where playback is, in seconds of the file."""
        with self._lock:
            return self._frame / self._rate

    def toggle(self, path: str) -> None:
        """Stop if ``path`` is playing, else play it (from the start)."""
        if self.playing and path == self.path:
            self.stop()
        else:
            self.play(path)

    def play(self, path: str) -> bool:
        """Play ``path`` from the start (stopping what plays); False, with ``failed``, if it cannot."""
        self.stop()
        try:
            audio, rate = sf.read(path, dtype="float32", always_2d=True)
        except (OSError, RuntimeError, sf.LibsndfileError) as exc:
            self.failed.emit(f"cannot play {path}: {exc}")
            return False
        try:
            import sounddevice as sd
        except (ImportError, OSError) as exc:  # no PortAudio library
            return self._no_output(exc)
        try:
            device = sd.query_devices(kind="output")
            channels = min(audio.shape[1], int(device["max_output_channels"])) or 1
            number = self._number + 1

            def finished() -> None:  # on the audio thread; must return None
                self._played_out.emit(number)

            stream = sd.OutputStream(samplerate=rate, channels=channels, dtype="float32",
                                     callback=self._callback, finished_callback=finished)
        except (sd.PortAudioError, ValueError) as exc:  # no device, or none that takes this file
            return self._no_output(exc)
        with self._lock:
            self._audio = audio[:, :channels] if audio.shape[1] >= channels else np.repeat(audio, channels, 1)
            self._rate, self._frame, self.path = rate, 0, path
        self._stream, self._number = stream, number
        stream.start()
        self._timer.start()
        return True

    def _no_output(self, exc: BaseException) -> bool:
        text = " ".join(str(exc).split()) or type(exc).__name__
        self.failed.emit("no audio output to play takes on: check the sound settings (Linux: install "
                         f"libportaudio2); PortAudio said: {text}")
        return False

    def stop(self) -> None:
        """Stop playing (at once); ``stopped`` follows."""
        stream, self._stream = self._stream, None
        if stream is None:
            return
        stream.abort()
        stream.close()
        self._timer.stop()
        self.position.emit(self.path, self.seconds())
        self.stopped.emit(self.path)

    # ------------------------------------------------------------------ audio thread
    def _callback(self, out: np.ndarray, frames: int, _time: Any, _status: Any) -> None:
        import sounddevice as sd

        with self._lock:
            start = self._frame
            block = self._audio[start:start + frames]
            self._frame = start + len(block)
        out[:len(block)] = block
        if len(block) < frames:
            out[len(block):] = 0
            raise sd.CallbackStop

    def _ended(self, number: int) -> None:
        """Stream ``number`` has played out (or was aborted). PortAudio calls its finished callback
        before the stream reads as inactive, so the stream's number, not ``active``, says which."""
        if self._stream is not None and number == self._number:
            self.stop()

    def _tick(self) -> None:
        if self._stream is not None:
            self.position.emit(self.path, self.seconds())
