import time

import numpy as np
import pytest
import soundfile as sf

from engine.wavfile import write_wav_atomic


def test_equal_audio_gives_byte_identical_files_written_a_second_apart(tmp_path):
    audio = np.sin(np.arange(800) / 5.0).astype(np.float32) * 0.5
    a = write_wav_atomic(tmp_path / "a.wav", audio, 16000, comment='{"seed": 1}')
    time.sleep(1.1)  # a PEAK chunk would carry a different time of writing
    b = write_wav_atomic(tmp_path / "b.wav", audio, 16000, comment='{"seed": 1}')
    assert a.read_bytes() == b.read_bytes() and b"PEAK" not in a.read_bytes()
    back, rate = sf.read(a, dtype="float32")
    assert rate == 16000 and np.array_equal(back, audio)


def test_an_existing_file_is_never_replaced_unless_asked(tmp_path):
    path = write_wav_atomic(tmp_path / "x.wav", np.zeros(10, np.float32), 8000)
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        write_wav_atomic(path, np.ones(10, np.float32) * 0.1, 8000, overwrite=False)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["x.wav"]
