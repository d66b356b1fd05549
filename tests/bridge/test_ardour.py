"""Following a real Ardour 7 (Debian's ardour: its Lua session interpreter on the dummy audio backend,
with the OSC control surface on): tempo, meter, transport at speed 2, playhead and bar lengths, as
wavestack measures them and as Ardour's own tempo map says."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import soundfile as sf

from .ardour import ARDOUR_LUA, Ardour
from .test_clients import free_port
from .test_follow import until

P = "/wavestack"
pytestmark = pytest.mark.skipif(ARDOUR_LUA is None, reason="needs Debian's ardour (ardour7-lua)")


def agrees(server, daw: Ardour) -> bool:
    """wavestack's session bar and meter are Ardour's own, and were measured, not assumed."""
    seconds, numerator, denominator = daw.bar_seconds()
    t = server.follower.transport
    return (tuple(server.session.meter) == (numerator, denominator)
            and server.session.seconds_per_bar == pytest.approx(seconds, rel=1e-4)
            and t.measured == {"tempo", "numerator", "denominator"})


def test_a_real_ardour_is_followed(tmp_path: Path, server, client):
    listen = free_port()
    with Ardour(tmp_path / "ardour", reply_port=listen, tempo=120, meter=(4, 4)) as daw:
        assert client.ask(f"{P}/follow/set", "ardour", listen, daw.osc_port)[0] == f"{P}/ack"
        assert until(lambda: server.follower.state() == "following", timeout=20)
        t = server.follower.transport
        assert not t.playing and t.measured == set()  # nothing measured before it rolls

        daw.roll()
        assert until(lambda: agrees(server, daw), timeout=30)
        assert server.session.tempo == 120.0 and t.playing

        daw.set_tempo_map(90, 6, 8)  # while rolling
        assert until(lambda: server.session.tempo == 90.0 and agrees(server, daw), timeout=30)
        assert daw.bar_seconds()[0] == pytest.approx(2.0)  # six eighths at 90 quarters a minute

        daw.speed(2.0)  # Ardour sends /transport_play 0 and /ffwd 1: still rolling
        assert until(lambda: float(daw.lua("print('@@ ' .. Session:actual_speed())")[0]) == 2.0, timeout=30)
        time.sleep(0.5)
        assert t.playing and server.session.tempo == 90.0

        daw.stop()
        assert until(lambda: not t.playing, timeout=30)
        daw.locate(7.25)
        assert daw.playhead() == pytest.approx(7.25)
        assert until(lambda: t.position == pytest.approx(7.25, abs=0.002), timeout=30)

        # a track of one bar at Ardour's playhead: placed there and rendered one Ardour bar long
        assert client.ask(f"{P}/track/add", "keys", "tiny")[0] == f"{P}/ack"
        assert client.ask(f"{P}/track/at_playhead", "keys")[0] == f"{P}/ack"
        assert client.ask(f"{P}/track/bars", "keys", 1.0)[0] == f"{P}/ack"
        client.send(f"{P}/generate", "keys")
        address, done = client.until(f"{P}/done", f"{P}/error", timeout=120)
        assert address == f"{P}/done", done
        stem = Path(server.session.project) / done[1]
        info = sf.info(str(stem))
        assert info.frames / info.samplerate == pytest.approx(daw.bar_seconds()[0], abs=1 / info.samplerate)
        render = json.loads((Path(server.session.project) / "wavestack.json").read_text())["renders"][-1]
        assert render["files"][0]["position_seconds"] == pytest.approx(7.25)
        assert render["tempo_source"] == {"daw": "ardour", "state": "following",
                                          "measured": ["denominator", "numerator", "tempo"], "session": []}

        daw.set_tempo_map(140, 3, 4)  # while stopped: Ardour says nothing of it until it rolls
        daw.roll()
        assert until(lambda: server.session.tempo == 140.0 and agrees(server, daw), timeout=30)
        daw.stop()
        assert until(lambda: not t.playing, timeout=30)
