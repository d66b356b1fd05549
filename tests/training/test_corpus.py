from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from training.cli import main
from training.corpus import SAMPLE_RATE, bach_scores, build_bach, default_soundfont, split_of
from training.errors import CorpusError

needs_fluidsynth = pytest.mark.skipif(
    shutil.which("fluidsynth") is None, reason="fluidsynth is not installed (apt-get install fluidsynth)"
)


def test_scores_are_the_chorales_in_music21_one_per_name():
    scores = bach_scores()
    names = [p.name.rsplit(".", 1)[0] for p in scores]
    assert len(scores) > 300 and len(names) == len(set(names)) and names == sorted(names)
    assert bach_scores(limit=2) == scores[:2]


def test_the_heldout_split_is_about_a_tenth_and_stable():
    names = [p.name.rsplit(".", 1)[0] for p in bach_scores()]
    heldout = [n for n in names if split_of(n) == "heldout"]
    assert 0.05 < len(heldout) / len(names) < 0.15
    assert split_of(heldout[0]) == "heldout"


@needs_fluidsynth
def test_one_chorale_renders_to_16k_mono_piano_audio(tmp_path):
    manifest = build_bach(tmp_path, limit=1)
    entry = manifest["files"][0]
    audio, rate = sf.read(tmp_path / entry["file"], dtype="float32")
    assert rate == SAMPLE_RATE and audio.ndim == 1
    assert entry["seconds"] == pytest.approx(len(audio) / rate, abs=1e-3) and entry["seconds"] > 10
    assert 0.85 < np.abs(audio).max() < 0.9  # peak-normalised to -1 dBFS
    assert 20 * np.log10(np.sqrt(np.mean(audio**2))) > -40  # music, not silence
    on_disk = json.loads((tmp_path / "corpus.json").read_text())
    assert on_disk["recipe"]["render"].endswith("reverb off, chorus off, gain 0.5")
    assert on_disk["recipe"]["soundfont"] == str(default_soundfont())
    # a second build keeps the rendered file (resume) and lists it again
    before = (tmp_path / entry["file"]).stat().st_mtime_ns
    assert build_bach(tmp_path, limit=1)["files"] == manifest["files"]
    assert (tmp_path / entry["file"]).stat().st_mtime_ns == before


def test_without_fluidsynth_the_error_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no fluidsynth on it
    with pytest.raises(CorpusError, match="apt-get install fluidsynth"):
        build_bach(tmp_path / "out", limit=1)
    assert main(["corpus", "bach", "--out", str(tmp_path / "out"), "--limit", "1", "--quiet"]) == 2
    assert "fluidsynth is not installed" in capsys.readouterr().err


@needs_fluidsynth
def test_a_missing_soundfont_is_an_error(tmp_path):
    with pytest.raises(CorpusError, match="soundfont not found"):
        build_bach(tmp_path, limit=1, soundfont=tmp_path / "none.sf2")
