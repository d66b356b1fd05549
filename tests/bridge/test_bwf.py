from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from bridge.render.bwf import read_bext, write_bwf
from engine.wavfile import atomic_output


@pytest.mark.parametrize(("bits", "subtype", "tolerance"),
                         [(16, "PCM_16", 2 / 32768), (24, "PCM_24", 2 / 8388608), (32, "FLOAT", 0.0)])
def test_stems_read_back_with_their_depth_and_position(tmp_path, bits, subtype, tolerance):
    audio = (0.8 * np.sin(np.arange(4801) / 7.0)).astype(np.float32)
    stereo = np.stack([audio, -0.5 * audio], axis=1)
    path = write_bwf(tmp_path / "a.wav", stereo, 48000, bits=bits, time_reference=48000 * 3600 * 30,
                     description="keys seed 4", coding_history="A=PCM,F=48000")
    back, rate = sf.read(path, dtype="float32")
    assert rate == 48000 and sf.info(path).subtype == subtype and back.shape == stereo.shape
    assert np.abs(back - stereo).max() <= tolerance
    bext = read_bext(path)
    assert bext.time_reference == 48000 * 3600 * 30  # past 2^32: the high word is used
    assert bext.description == "keys seed 4" and bext.originator == "wavestack" and bext.version == 2
    assert bext.coding_history == "A=PCM,F=48000"


def test_pcm_clips_instead_of_wrapping(tmp_path):
    path = write_bwf(tmp_path / "a.wav", np.array([2.0, -2.0], np.float32), 8000, bits=16)
    assert sf.read(path)[0].tolist() == pytest.approx([32767 / 32768, -32767 / 32768])


def test_an_existing_file_is_never_replaced(tmp_path):
    path = write_bwf(tmp_path / "a.wav", np.zeros(10, np.float32), 8000)
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        write_bwf(path, np.ones(10, np.float32) * 0.5, 8000)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"]  # no temporary left behind


def test_a_failed_write_leaves_nothing_visible(tmp_path):
    with pytest.raises(OSError, match="No space left"), atomic_output(tmp_path / "stem.wav") as fh:
        fh.write(b"RIFF half a file")
        raise OSError(28, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_a_file_without_bext_is_reported(tmp_path):
    sf.write(tmp_path / "plain.wav", np.zeros(10), 8000)
    with pytest.raises(ValueError, match="no bext"):
        read_bext(tmp_path / "plain.wav")
