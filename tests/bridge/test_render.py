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
