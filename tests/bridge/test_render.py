"""Rendering several tracks: passes shared by tracks that can be generated as rows of one."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from bridge.render.generate import group_rows
from bridge.render.project import Project
from bridge.render.stems import render_track, render_tracks
from bridge.session import Session, Track


def test_tracks_that_can_share_a_pass_render_as_they_render_alone(tmp_path, tiny_model):
    tracks = [Track("a", "tiny", seconds=0.2), Track("b", "tiny", seconds=0.2, seed=7, gain_db=-6.0),
              Track("c", "tiny", seconds=0.3, seed=7), Track("d", "tiny", seconds=0.2, seed=9, top_p=0.9)]
    session = Session(project=str(tmp_path / "song"), tracks=tracks)
    seeded = [replace(t, seed=1) for t in tracks]
    assert group_rows(session, seeded) == [[0, 1], [2], [3]]  # c: another length, d: another top-p
    assert group_rows(session, seeded, max_rows=1) == [[0], [1], [2], [3]]
    assert group_rows(session, tracks)[0] == [0]  # a random seed is drawn at render time
    project = Project(session.project)
    together = render_tracks(session, tracks, project)
    assert [r.track for r in together] == ["a", "b", "c", "d"]
    assert together[0].seed >= 0 and [r.seed for r in together[1:]] == [7, 7, 9]
    for track, rendered in zip(tracks, together, strict=True):
        alone = render_track(session, replace(track, seed=rendered.seed), project)
        assert alone.take == rendered.take + 1 and np.array_equal(alone.audio, rendered.audio)


def test_a_primer_whose_header_claims_hours_is_refused_before_anything_is_read(tmp_path, tiny_model):
    import struct

    import pytest

    from bridge.osc.server import Server

    huge = tmp_path / "huge.wav"  # a 44-byte WAV header over a sparse 2-GiB data chunk
    size = 2**31
    header = b"RIFF" + struct.pack("<I", 36 + size) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16) + b"data" + struct.pack("<I", size)
    with open(huge, "wb") as fh:
        fh.write(header)
        fh.truncate(len(header) + size)
    track = {"name": "keys", "model": "tiny", "seed": 1, "primer": str(huge)}
    session = Session.from_dict({"project": str(tmp_path / "p"), "tracks": [track]})
    with pytest.raises(ValueError, match=r"primer .*huge.wav is 37.3 h long; at most 600 s"):
        render_track(session, session.tracks[0], Project(session.project))
    assert not list((tmp_path / "p" / "Audio").glob("*.wav"))
    server = Server(port=0, project=str(tmp_path / "p"), projects_root=str(tmp_path))
    try:  # the server says so at once, before queuing a job
        from tests.bridge.conftest import Client

        server.start()
        client = Client(server.address)
        try:
            client.ask("/wavestack/track/add", "keys", "tiny")
            client.ask("/wavestack/track/primer", "keys", str(huge))
            address, args = client.ask("/wavestack/generate", "keys")
            assert address == "/wavestack/error" and "at most 600 s" in args[-1]
        finally:
            client.close()
    finally:
        server.shutdown()
