"""A render that would not fit in memory is refused before it starts, saying the estimate and the limit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bridge.cli.main import main
from bridge.cli.reliability import STEM, high_water_marks
from bridge.render import memory
from bridge.render.generate import config_of, group_rows
from bridge.session import Session, Track

from .conftest import Client

P = "/wavestack"
ROOT = Path(__file__).parents[2]


@pytest.fixture
def limit_mb(monkeypatch):
    def set_to(mb: float) -> None:
        monkeypatch.setenv(memory.ENV, str(mb / 1000))
    return set_to


def test_a_track_over_the_limit_is_refused_before_it_is_queued(server, limit_mb):
    limit_mb(300)  # the tiny model at 48 kHz: about 80 s fit
    client = Client(server.address)
    try:
        assert client.ask(f"{P}/track/add", "keys", "tiny")[0] == f"{P}/ack"
        assert client.ask(f"{P}/track/seconds", "keys", 600.0)[0] == f"{P}/ack"
        address, args = client.ask(f"{P}/generate", "keys")
        assert address == f"{P}/error" and len(args) == 2  # refused at once: no job id
        assert "track keys (600 s) would need about 0.9 GB of memory, over the limit of 0.3 GB" in args[1]
        assert "--memory-limit" in args[1]
        assert client.ask(f"{P}/track/seconds", "keys", 0.2)[0] == f"{P}/ack"
        assert client.ask(f"{P}/generate", "keys") == (f"{P}/ack", [f"{P}/generate", 1])  # the first job
        assert client.until(f"{P}/done")[1][0] == 1
    finally:
        client.close()


def test_tracks_that_fit_alone_are_refused_together_when_their_stems_and_mix_do_not(server, limit_mb):
    alone = memory.render_bytes(config_of("tiny"), 20.0, 48000)
    together = alone + (3 + memory.OUTPUT_COPIES) * memory.held_stem_bytes(20.0, 48000)
    limit_mb((alone + together) / 2e6)
    client = Client(server.address)
    try:
        for name in ("a", "b", "c"):  # each render fits; holding three stems and mixing them does not
            assert client.ask(f"{P}/track/add", name, "tiny")[0] == f"{P}/ack"
            assert client.ask(f"{P}/track/seconds", name, 20.0)[0] == f"{P}/ack"
        address, args = client.ask(f"{P}/generate_all")
        assert address == f"{P}/error" and "all 3 tracks and their mix (20 s) would need about" in args[1]
        assert not list((Path(server.session.project) / "Audio").glob("*.wav"))
        limit_mb(together / 1e6 + 1)
        assert client.ask(f"{P}/generate_all")[0] == f"{P}/ack"
    finally:
        client.close()


def test_a_batched_pass_holds_no_more_rows_than_the_limit_allows(tmp_path, tiny_model, limit_mb):
    tracks = [Track(f"t{i}", "tiny", seconds=10.0, seed=i) for i in range(6)]
    session = Session(project=str(tmp_path / "p"), tracks=tracks)
    per_row = memory.render_bytes(config_of("tiny"), 10.0, session.sample_rate) - memory.FIXED
    limit_mb((memory.FIXED + 2.5 * per_row) / 1e6)
    assert group_rows(session, tracks) == [[0, 1], [2, 3], [4, 5]]
    limit_mb(10_000)
    assert group_rows(session, tracks) == [[0, 1, 2, 3, 4, 5]]


def test_generate_says_the_limit_and_writes_nothing(tmp_path, tiny_model, capsys, limit_mb):
    limit_mb(10_000)  # (restored after the test: --memory-limit sets it for this process)
    out = tmp_path / "long.wav"
    assert main(["generate", "--model", "tiny", "--seconds", "600", "--memory-limit", "0.2",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "generating 600 s would need about 0.5 GB" in err and "over the limit of 0.2 GB" in err
    assert not out.exists()
    assert main(["generate", "--model", "tiny", "--seconds", "1", "--memory-limit", "0",
                 "--out", str(out)]) == 2
    assert "--memory-limit must be a number of gigabytes > 0" in capsys.readouterr().err


def test_the_estimate_is_at_least_what_a_render_really_holds(tiny_model):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    (loaded, peak), _ = high_water_marks(STEM, ["tiny", "100"], env)  # MiB, as the bench measures it
    grown = (peak - loaded) * 2**20
    estimate = memory.render_bytes(config_of("tiny"), 100.0, 48000)
    assert grown <= estimate, (grown, estimate)
    assert grown > 0.3 * estimate  # and not a bound so loose it would refuse what fits
