from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from bridge.render.bwf import read_bext
from bridge.render.project import Project, ProjectError
from bridge.render.stems import mix, render_track
from bridge.session import Session


def session(tmp_path, **track):
    return Session.from_dict({"project": str(tmp_path / "p"), "tempo": 100, "sample_rate": 44100,
                              "tracks": [{"name": "keys", "model": "tiny", "seed": 11, **track}]})


def test_a_track_renders_to_a_positioned_stem_with_a_manifest_and_rpp(tmp_path, tiny_model):
    s = session(tmp_path, bars=0.25, at_bar=2)
    project = Project(s.project)
    r = render_track(s, s.tracks[0], project)
    assert r.path == project.root / "Audio" / "01_keys_take1.wav"
    info = sf.info(r.path)
    seconds_per_bar = 4 * 60 / 100
    assert info.samplerate == 44100 and info.subtype == "PCM_24"
    assert info.frames == round(0.25 * seconds_per_bar * 44100)
    assert read_bext(r.path).time_reference == round(seconds_per_bar * 44100)
    render = json.loads((project.root / "wavestack.json").read_text())["renders"][0]
    assert render["seed"] == 11 and render["model"] == "tiny" and len(render["model_hash"]) == 64
    assert render["parameters"]["bars"] == 0.25 and render["session"]["tempo"] == 100
    assert render["files"][0]["path"] == "Audio/01_keys_take1.wav"
    rpp = (project.root / "wavestack.rpp").read_text()
    assert "TEMPO 100 4 4" in rpp and f"POSITION {seconds_per_bar:.6f}" in rpp
    assert 'FILE "Audio/01_keys_take1.wav"' in rpp


def test_the_manifest_renders_the_take_again_bit_identically(tmp_path, tiny_model):
    s = session(tmp_path, seconds=0.3, seed=-1)
    project = Project(s.project)
    first = render_track(s, s.tracks[0], project)
    recorded = json.loads((project.root / "wavestack.json").read_text())["renders"][0]
    again = Session.from_dict({**recorded["session"], "project": s.project,
                               "tracks": [recorded["parameters"]]})
    second = render_track(again, again.tracks[0], project)
    assert second.take == 2 and second.seed == first.seed
    assert np.array_equal(sf.read(first.path)[0], sf.read(second.path)[0])


def test_takes_never_overwrite_and_a_failed_write_leaves_no_trace(tmp_path, tiny_model, monkeypatch):
    s = session(tmp_path, seconds=0.1)
    project = Project(s.project)
    render_track(s, s.tracks[0], project)
    manifest_before = (project.root / "wavestack.json").read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch, pytest.raises(OSError, match="No space"):
        patch.setattr("engine.wavfile.os.fsync", full_disk)  # the disk fills while the stem is written
        render_track(s, s.tracks[0], project)
    assert (project.root / "wavestack.json").read_bytes() == manifest_before
    assert sorted(p.name for p in (project.root / "Audio").iterdir()) == ["01_keys_take1.wav"]
    assert render_track(s, s.tracks[0], project).take == 2


def test_the_mix_sums_stems_at_their_positions(tmp_path, tiny_model):
    s = Session.from_dict({"project": str(tmp_path / "p"), "sample_rate": 48000, "bit_depth": 32, "tracks": [
        {"name": "a", "model": "tiny", "seconds": 0.2, "position": 1.0, "seed": 1, "gain_db": -12},
        {"name": "b", "model": "tiny", "seconds": 0.2, "position": 1.5, "seed": 2, "gain_db": -18}]})
    project = Project(s.project)
    stems = [render_track(s, t, project) for t in s.tracks]
    out = mix(s, project, stems)
    audio, _rate = sf.read(out.path, dtype="float32")
    a, b = (sf.read(x.path, dtype="float32")[0] for x in stems)
    assert read_bext(out.path).time_reference == 48000 and len(audio) == round(0.7 * 48000)
    assert np.allclose(audio[:len(a)], a) and np.allclose(audio[24000:], b)
    assert "mix_take1" not in (project.root / "wavestack.rpp").read_text()  # it would double the stems


def test_paths_stay_inside_the_project(tmp_path):
    project = Project(tmp_path / "p")
    with pytest.raises(ProjectError, match="outside the project"):
        project.inside("../elsewhere.wav")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ProjectError, match="not a folder"):
        Project(tmp_path / "file")
    with pytest.raises(ProjectError, match="no project folder"):
        Project("")


def test_a_mix_louder_than_full_scale_is_brought_under_the_ceiling_and_says_so(tmp_path, tiny_model):
    from bridge.render.stems import CEILING_DB, true_peak

    loud = [{"plugin": "Gain", "gain_db": 12}, {"plugin": "Limiter", "threshold_db": -1}]
    track = {"name": "a", "model": "tiny", "seconds": 0.3, "seed": 1}
    s = Session.from_dict({"project": str(tmp_path / "p"), "sample_rate": 48000, "bit_depth": 24,
                           "master_fx": loud, "tracks": [track]})
    project = Project(s.project)
    stems = [render_track(s, s.tracks[0], project)]
    out = mix(s, project, stems)
    audio, rate = sf.read(out.path, dtype="float32", always_2d=True)
    assert true_peak(audio.T, rate) <= 10 ** (CEILING_DB / 20) * 1.001  # 24-bit rounding
    entry = json.loads((project.root / "wavestack.json").read_text())["renders"][-1]
    assert entry["kind"] == "mix" and entry["safety_gain_db"] < 0
    quiet = Session.from_dict({**s.to_dict(), "master_fx": [{"plugin": "Gain", "gain_db": -30}]})
    mix(quiet, project, stems)
    assert json.loads((project.root / "wavestack.json").read_text())["renders"][-1]["safety_gain_db"] == 0.0


def test_the_reaper_project_holds_every_take_with_the_newest_active(tmp_path, tiny_model):
    s = session(tmp_path, seconds=0.1)
    project = Project(s.project)
    for seed in (1, 2, 3):
        s.tracks[0].seed = seed
        render_track(s, s.tracks[0], project)
    s.tracks[0].position = 2.0
    render_track(s, s.tracks[0], project)  # a take somewhere else: an item of its own
    rpp = (project.root / "wavestack.rpp").read_text()
    assert rpp.count("<TRACK") == 1 and rpp.count("<ITEM") == 2 and rpp.count("<SOURCE WAVE") == 4
    assert "SAMPLERATE 44100 0 0" in rpp
    first_item = rpp.split("<ITEM")[1]
    assert first_item.count("TAKE SEL") == 1 and first_item.count("TAKE") == 2
    assert first_item.index("TAKE SEL") < first_item.index("01_keys_take3.wav")  # the newest is active
    assert first_item.index("01_keys_take1.wav") < first_item.index("01_keys_take2.wav")


def test_one_wavestack_at_a_time_writes_a_project_and_leftovers_of_a_killed_one_go(tmp_path, tiny_model):
    from bridge.osc.server import Server
    from bridge.render.project import Claim

    project = tmp_path / "song"
    (project / "Audio").mkdir(parents=True)
    leftover = project / "Audio" / ".01_keys_take1.wav.abc123.part"  # what kill -9 mid-write leaves
    leftover.write_bytes(b"RIFF half a stem")
    first = Server(port=0, project=str(project))
    try:
        assert not leftover.exists()
        with pytest.raises(ProjectError, match=r"in use by another wavestack \(pid \d+\)"):
            Server(port=0, project=str(project))
        with pytest.raises(ProjectError, match="in use"):
            Claim(project)  # a batch, `wavestack render` or merge into it
    finally:
        first.shutdown()
    Claim(project).release()  # free again once the server stopped


def test_a_take_whose_manifest_entry_cannot_be_written_is_not_left_behind(tmp_path, tiny_model, monkeypatch):
    s = session(tmp_path, seconds=0.1)
    project = Project(s.project)
    render_track(s, s.tracks[0], project)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch, pytest.raises(OSError, match="No space"):
        patch.setattr(Project, "record", full_disk)  # room for the stem, none for the manifest
        render_track(s, s.tracks[0], project)
    assert sorted(p.name for p in (project.root / "Audio").iterdir()) == ["01_keys_take1.wav"]
    assert render_track(s, s.tracks[0], project).take == 2  # not 3: nothing orphaned took a number


def test_a_project_folder_deleted_before_the_stem_is_written_is_not_made_again(tmp_path, tiny_model):
    import shutil

    s = session(tmp_path, seconds=0.1)
    project = Project(s.project)
    shutil.rmtree(project.root)  # the user deleted the folder while the track rendered
    with pytest.raises(ProjectError, match="is gone"):
        render_track(s, s.tracks[0], project)
    assert not project.root.exists()


def test_takes_written_but_never_recorded_are_set_aside_when_a_server_opens_the_project(tmp_path, tiny_model,
                                                                                         caplog):
    from bridge.osc.server import Server

    s = session(tmp_path)
    project = Project(s.project)
    kept = render_track(s, s.tracks[0], project)
    lost = render_track(s, s.tracks[0], project)
    manifest = json.loads(project.manifest_path.read_text())
    manifest["renders"].pop()  # as if killed between writing the take and recording it
    project.manifest_path.write_text(json.dumps(manifest))
    theirs = project.root / "Audio" / "02_vocals_take1.wav"  # the user's own file, not ours
    sf.write(theirs, np.zeros(100, np.float32), 44100)
    (project.root / "Unrecorded").mkdir()
    earlier = project.root / "Unrecorded" / lost.path.name  # set aside once before: never replaced
    earlier.write_bytes(b"an earlier one")
    audio = lost.path.read_bytes()
    with caplog.at_level("INFO"):
        Server(port=0, project=str(project.root)).shutdown()
    said = "1 take(s) an interrupted render wrote but did not record moved to Unrecorded/: "
    assert f"{said}{lost.path.stem}.2.wav" in caplog.text
    assert kept.path.is_file() and theirs.is_file() and not lost.path.exists()
    assert earlier.read_bytes() == b"an earlier one"
    moved = project.root / "Unrecorded" / f"{lost.path.stem}.2.wav"
    assert moved.read_bytes() == audio  # nothing lost, just out of the DAW's Audio/ folder
    left = sorted(p.name for p in (project.root / "Audio").glob("*.wav"))
    assert left == sorted([kept.path.name, theirs.name])
