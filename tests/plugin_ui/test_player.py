"""Hearing takes: real PortAudio on ALSA, with a null output device (the machine has no sound card)
or with none at all; the window's transport under Qt offscreen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

sd = pytest.importorskip("sounddevice", reason="sounddevice needs PortAudio (apt-get install libportaudio2)")

from plugin_ui.player import Player  # noqa: E402
from plugin_ui.takes import TakeList, TakeTransport  # noqa: E402


@pytest.fixture
def audio_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``audio_output(True)``: ALSA's default device is a null sink; ``False``: ALSA's default is a
    sound card that is not there, so PortAudio finds no output."""

    def use(present: bool) -> None:
        config = tmp_path / "asound.conf"
        config.write_text("pcm.!default { type null }\n" if present else "pcm.!default { type hw card 99 }\n")
        monkeypatch.setenv("ALSA_CONFIG_PATH", str(config))
        sd._terminate()  # PortAudio lists devices when it starts: start it again on this config
        sd._initialize()

    yield use
    monkeypatch.delenv("ALSA_CONFIG_PATH", raising=False)
    sd._terminate()
    sd._initialize()


def tone(path: Path, seconds: float, rate: int = 48000, channels: int = 2) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, np.repeat((0.2 * np.sin(2 * np.pi * 440 * t))[:, None], channels, 1), rate,
             subtype="PCM_24")
    return path


def test_a_take_plays_to_its_end_with_a_playhead_that_only_moves_on(app, pump, tmp_path, audio_output):
    audio_output(True)
    player = Player()
    positions, stopped = [], []
    player.position.connect(lambda path, s: positions.append(s))
    player.stopped.connect(stopped.append)
    path = str(tone(tmp_path / "take.wav", 0.5))
    assert player.play(path) and player.playing
    assert pump(lambda: stopped, timeout=10)
    assert stopped == [path] and not player.playing
    assert positions == sorted(positions) and positions[-1] == pytest.approx(0.5, abs=1e-3)
    assert player.duration() == pytest.approx(0.5)


def test_no_audio_output_is_a_message_not_a_crash(app, tmp_path, audio_output):
    audio_output(False)
    player = Player()
    failures: list[str] = []
    player.failed.connect(failures.append)
    assert not player.play(str(tone(tmp_path / "take.wav", 0.2)))
    assert len(failures) == 1 and failures[0].startswith("no audio output to play takes on")
    assert "libportaudio2" in failures[0] and not player.playing
    assert not player.play(str(tmp_path / "missing.wav")) and "cannot play" in failures[-1]


def test_space_plays_the_selected_take_and_the_buttons_step_through_takes(app, pump, tmp_path, audio_output):
    audio_output(True)
    takes = TakeList()
    transport = TakeTransport(takes)
    files = [str(tone(tmp_path / f"take{i}.wav", 0.3, channels=1)) for i in (1, 2, 3)]
    takes.show_takes([{"take": i + 1, "seed": i, "seconds": 0.3, "position_seconds": 0.0, "path": p}
                      for i, p in enumerate(files)])
    played: list[str] = []
    transport.player.stopped.connect(played.append)
    transport.toggle()  # nothing selected: the first take
    assert pump(lambda: played == files[:1])
    assert transport.play_button.text() == "Play  (Space)"
    transport.audition(1)
    assert pump(lambda: played == files[:2]) and takes.currentRow() == 1
    transport.audition(1)
    transport.audition(1)  # past the last take: the last again
    assert pump(lambda: len(played) == 4) and played[2:] == [files[2], files[2]]
    transport.audition(-1)
    assert pump(lambda: len(played) == 5) and played[4] == files[1]
    empty = TakeTransport(TakeList())
    empty.toggle()
    assert "no take to play yet" in empty.message.text()


def test_the_window_plays_on_space_and_says_when_it_cannot(server, open_window, pump, audio_output):
    from tests.plugin_ui.test_window import window_with_takes

    audio_output(False)
    window = window_with_takes(server, open_window, pump)
    window.takes.setCurrentRow(0)
    window.activateWindow()
    QTest.keyClick(window.takes, Qt.Key.Key_Space)
    assert pump(lambda: window.transport.message.text().startswith("no audio output"))
    audio_output(True)
    played: list[str] = []
    window.transport.player.stopped.connect(played.append)
    QTest.keyClick(window.takes, Qt.Key.Key_Space)
    assert pump(lambda: played == window.takes.paths([window.takes.item(0)]), timeout=10)
    assert window.transport.message.text() == ""
