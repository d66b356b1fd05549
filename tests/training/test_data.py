from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from engine import mulaw
from training.data import SegmentSampler, load_folder
from training.errors import DataError

from .conftest import tones


def test_any_rate_channel_count_and_format_is_read_resampled_and_downmixed(tmp_path):
    tone = tones(seconds=1.0, rate=44100)[0]
    sf.write(tmp_path / "stereo44k.wav", np.stack([tone, tone], axis=1), 44100)
    (tmp_path / "sub").mkdir()
    sf.write(tmp_path / "sub" / "mono.flac", tones(1.0, 8000)[1], 8000)
    sf.write(tmp_path / "sub" / "vorbis.OGG", tones(1.0, 22050)[2], 22050)
    folder = load_folder(tmp_path, sample_rate=8000)
    assert folder.files == ["stereo44k.wav", "sub/mono.flac", "sub/vorbis.OGG"]
    assert [len(s) for s in folder.sequences] == [8000, 8000, 8000]
    assert all(s.dtype == np.uint8 for s in folder.sequences)
    # the resampled stereo tone still sounds like the tone: compare with the same tone made at 8 kHz
    expected = mulaw.encode_np(tones(1.0, 8000)[0])
    assert np.abs(folder.sequences[0].astype(int) - expected.astype(int))[100:-100].mean() < 4


def test_silent_and_unreadable_files_are_reported_and_skipped(tmp_path):
    sf.write(tmp_path / "good.wav", tones(1.0)[0], 8000)
    sf.write(tmp_path / "silent.wav", np.zeros(8000, np.float32), 8000)
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00not a wave file")
    folder = load_folder(tmp_path, sample_rate=8000)
    assert folder.files == ["good.wav"]
    reasons = dict(folder.skipped)
    assert reasons["silent.wav"] == "silence only"
    assert reasons["broken.wav"].startswith("unreadable")


def test_empty_and_missing_folders_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_folder(tmp_path / "missing", sample_rate=8000)
    with pytest.raises(DataError, match="holds no audio files"):
        load_folder(tmp_path, sample_rate=8000)
    sf.write(tmp_path / "silent.wav", np.zeros(800, np.float32), 8000)
    with pytest.raises(DataError, match="no usable audio"):
        load_folder(tmp_path, sample_rate=8000)


def test_sampler_windows_come_from_one_file_and_its_state_replays():
    seqs = [np.full(100, 1, np.uint8), np.full(50, 2, np.uint8), np.full(10, 3, np.uint8)]
    sampler = SegmentSampler(seqs, segment=20, batch=64, seed=5)
    batch = sampler.next()
    assert batch.shape == (64, 20)
    assert all(len(set(row)) == 1 and row[0] in (1, 2) for row in batch.tolist())  # 3 is too short
    saved = sampler.state
    expected = sampler.next()
    sampler.state = saved
    assert np.array_equal(sampler.next(), expected)


def test_sampler_refuses_segments_longer_than_every_file():
    with pytest.raises(DataError, match="lower the stage's segment"):
        SegmentSampler([np.zeros(10, np.uint8)], segment=11, batch=1, seed=0)
