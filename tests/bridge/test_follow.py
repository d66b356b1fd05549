"""Following a DAW: message sequences as REAPER, Ardour and AbletonOSC send them, replayed on loopback
by a fake DAW that also checks what wavestack sends it (greetings, surface registration, listeners).
Ardour's is a sequence captured from a real Ardour 7.3 (tests/bridge/ardour.py); test_ardour.py drives
a live one."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

from bridge.osc.follow import Ardour, Follower, Reaper

from .conftest import Client
from .test_clients import free_port

P = "/wavestack"


class FakeDaw:
    """The DAW's side: receives what wavestack sends, answers to where it came from."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.peer: tuple[str, int] | None = None

    def expect(self, address: str, timeout: float = 10.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            data, self.peer = self.sock.recvfrom(65536)
            for m in OscPacket(data).messages:
                if m.message.address == address:
                    return list(m.message.params)
        raise TimeoutError(f"the DAW never got {address}")

    def send(self, address: str, *args: Any) -> None:
        builder = OscMessageBuilder(address=address)
        for a in args:
            builder.add_arg(a)
        self.sock.sendto(builder.build().dgram, self.peer)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def daw():
    fake = FakeDaw()
    yield fake
    fake.close()


def until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_reaper_tempo_meter_transport_and_render_at_playhead(server, client, daw):
    listener = Client(server.address)  # a subscriber, like a Pd patch
    assert listener.ask(f"{P}/subscribe", listener.sock.getsockname()[1])[0] == f"{P}/ack"
    assert client.ask(f"{P}/follow/set", "reaper", free_port(), daw.port) == (f"{P}/ack", [f"{P}/follow/set"])
    assert daw.expect("/action") == [Reaper.REFRESH_ACTION]  # REAPER sends tempo only on change: ask
    # what REAPER answers a refresh with (Default.ReaperOSC patterns), then a 3/4 bar played
    for address, *args in [("/tempo/raw", 128.0), ("/tempo/str", "128.00"), ("/time", 0.0),
                           ("/beat/str", "1.1.00"), ("/play", 0.0), ("/stop", 1.0), ("/play", 1.0),
                           ("/stop", 0.0), ("/beat/str", "1.2.00"), ("/time", 0.47), ("/beat/str", "1.3.00"),
                           ("/time", 0.94), ("/beat/str", "2.1.00"), ("/time", 1.41), ("/time", 1.5)]:
        daw.send(address, *args)
    assert until(lambda: server.session.tempo == 128.0 and server.session.meter == (3, 4))
    pushed = listener.until(f"{P}/follow")[1]  # subscribers hear of the change
    listener.close()
    assert pushed[:2] == ["reaper", "following"]
    assert until(lambda: server.follower.transport.position == pytest.approx(1.5))
    address, status = client.ask(f"{P}/follow/status")
    assert address == f"{P}/follow" and status[:6] == ["reaper", "following", 128.0, 3, 4, 1]
    assert status[6] == pytest.approx(1.5) and 0 <= status[7] < 5

    assert client.ask(f"{P}/track/add", "keys", "tiny")[0] == f"{P}/ack"
    assert client.ask(f"{P}/track/at_playhead", "keys")[0] == f"{P}/ack"
    assert client.ask(f"{P}/track/bars", "keys", 0.25)[0] == f"{P}/ack"  # a quarter bar at 128 BPM, 3/4
    track = server.session.track("keys")
    assert track.position == pytest.approx(1.5)
    assert server.session.length_of(track) == pytest.approx(0.25 * 3 * 60 / 128)
    client.send(f"{P}/generate", "keys")
    client.until(f"{P}/done")
    render = json.loads((Path(server.session.project) / "wavestack.json").read_text())["renders"][-1]
    assert render["session"]["tempo"] == 128.0 and render["tempo_source"]["daw"] == "reaper"
    assert render["files"][0]["position_seconds"] == pytest.approx(1.5)

    daw.send("/stop", 1.0)
    assert until(lambda: not server.follower.transport.playing)
    assert client.ask(f"{P}/follow/set", "none")[0] == f"{P}/ack"
    assert client.ask(f"{P}/follow/status")[1][:2] == ["none", "off"]
    assert client.ask(f"{P}/track/at_playhead", "keys")[1][1].startswith("no DAW playhead known")


def test_a_silent_daw_keeps_its_last_values_and_garbage_is_survived(daw):
    events: list[set[str]] = []
    follower = Follower("reaper", lambda t, changed: events.append(changed), listen_port=0,
                        send_port=daw.port, silent_after=0.4).start()
    try:
        daw.expect("/action")
        daw.sock.sendto(b"\x00garbage", daw.peer)
        daw.send("/tempo/raw", 90.0)
        daw.send("/tempo/raw", "not a number")
        assert until(lambda: follower.transport.tempo == 90.0 and follower.state() == "following")
        assert until(lambda: follower.state() == "silent", timeout=5)
        assert until(lambda: {"state"} in events)
        assert follower.transport.tempo == 90.0  # the last known value stays
    finally:
        follower.stop()


def test_a_broken_bundle_sent_to_the_follower_does_not_stop_it(daw):
    follower = Follower("reaper", lambda t, changed: None, listen_port=0, send_port=daw.port).start()
    try:
        daw.expect("/action")
        # 24 bytes: '#bundle', a time tag, then an element whose size is negative (python-osc
        # alone would loop on it forever)
        daw.sock.sendto(b"#bundle\0" + b"\0" * 7 + b"\1" + (-4).to_bytes(4, "big", signed=True) + b"\0" * 4,
                        daw.peer)
        daw.send("/tempo/raw", 101.0)
        assert until(lambda: follower.transport.tempo == 101.0)
    finally:
        follower.stop()


ARDOUR_SEQUENCE = Path(__file__).parent / "data" / "ardour-7.3.jsonl"  # python -m tests.bridge.ardour FILE


def ardour_sequence() -> list[tuple[str, list[bytes]]]:
    """The captured Ardour 7.3 session, cut at its marks: (what was just done, datagrams until the next)."""
    parts: list[tuple[str, list[bytes]]] = [("greeted", [])]
    for line in ARDOUR_SEQUENCE.read_text().splitlines():
        _, data = json.loads(line)
        if data.startswith("# "):
            parts.append((data[2:], []))
        else:
            parts[-1][1].append(bytes.fromhex(data))
    return parts


def test_ardour_tempo_and_meter_are_measured_from_a_real_sequence(server, client, daw):
    """Replays what a real Ardour 7.3 sent (captured by tests/bridge/ardour.py): 120 BPM 4/4 rolling,
    90 BPM 6/8 from the session start while rolling, speed 2, stop, locate, 140 BPM 3/4 while
    stopped, roll, stop, session closed."""
    assert client.ask(f"{P}/follow/set", "ardour", free_port(), daw.port)[0] == f"{P}/ack"
    bank, strips, feedback, fader = daw.expect("/set_surface")
    assert feedback == Ardour.FEEDBACK and (bank, strips, fader) == (0, 0, 0)
    assert feedback & 8 and feedback & 16 and feedback & 32 and feedback & 2048
    t = server.follower.transport
    m = "tempo,numerator,denominator"
    expected = [  # after the datagrams that followed each mark: session tempo, meter, playing, measured
        ("greeted", 120.0, (4, 4), False, ""),
        ("roll at 120, 4/4", 120.0, (4, 4), True, m),
        ("90 BPM, 6/8 while rolling", 90.0, (6, 8), True, m),
        ("speed 2", 90.0, (6, 8), True, m),  # /transport_play 0, /transport_stop 0, /ffwd 1
        ("stop", 90.0, (6, 8), False, m),
        ("locate to 10 s", 90.0, (6, 8), False, m),
        ("140 BPM, 3/4 while stopped", 90.0, (6, 8), False, m),  # Ardour sends nothing of it yet
        ("roll", 140.0, (3, 4), True, m),
        ("stop", 140.0, (3, 4), False, m),
        ("close the session", 140.0, (3, 4), False, ""),  # blank strings: values kept, no longer measured
    ]
    sequence = ardour_sequence()
    assert [part[0] for part in sequence] == [e[0] for e in expected]
    sent = 0
    for (_, datagrams), (mark, tempo, meter, playing, measured) in zip(sequence, expected, strict=True):
        for data in datagrams:
            daw.sock.sendto(data, daw.peer)
        sent += len(datagrams)
        assert until(lambda: server.follower.received == sent)  # noqa: B023
        assert (server.session.tempo, server.session.meter, t.playing) == (tempo, meter, playing), mark
        status = client.ask(f"{P}/follow/status")[1]
        assert status[:6] == ["ardour", "following", tempo, *meter, int(playing)], mark
        assert status[8] == measured, mark
    assert t.position is None  # the session closed: no playhead to place a track at
    render_source = server.handlers._tempo_source()["tempo_source"]
    assert render_source["measured"] == []
    assert render_source["session"] == ["tempo", "numerator", "denominator"]


def test_ardour_is_registered_again_only_when_it_goes_quiet(daw):
    """Each /set_surface makes Ardour resend a 26-message dump and reset the surface: not while it talks."""
    follower = Follower("ardour", lambda t, changed: None, listen_port=0, send_port=daw.port,
                        greet_every=0.3).start()
    try:
        daw.expect("/set_surface")
        for _ in range(12):  # Ardour's heartbeat, faster than the greeting period
            daw.send("/heartbeat", 1.0)
            time.sleep(0.1)
        daw.sock.settimeout(0.05)
        with pytest.raises(TimeoutError):
            daw.sock.recvfrom(65536)  # no registration while it was heard
        daw.expect("/set_surface", timeout=5)  # quiet for longer than 0.3 s: registered again
    finally:
        follower.stop()


def test_ableton_listeners_tempo_signature_and_song_time(server, client, daw):
    assert client.ask(f"{P}/follow/set", "ableton", free_port(), daw.port)[0] == f"{P}/ack"
    daw.expect("/live/song/start_listen/tempo")
    for address, value in [("/live/song/get/tempo", 100.0), ("/live/song/get/signature_numerator", 6),
                           ("/live/song/get/signature_denominator", 8), ("/live/song/get/is_playing", 1),
                           ("/live/song/get/current_song_time", 8.0)]:
        daw.send(address, value)
    assert until(lambda: (server.session.tempo, server.session.meter) == (100.0, (6, 8)))
    t = server.follower.transport
    assert until(lambda: t.playing and t.position == pytest.approx(4.8))  # 8 beats at 100 BPM
    daw.send("/live/song/get/tempo", 400.0)  # outside what a session takes: ignored, logged
    assert until(lambda: t.tempo == 400.0)
    assert server.session.tempo == 100.0


def test_follow_refuses_a_taken_port(server, client):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        address, (_, text) = client.ask(f"{P}/follow/set", "reaper", port)
    assert address == f"{P}/error" and "cannot listen for reaper" in text and "listen_port" in text
    assert client.ask(f"{P}/follow/set", "cubase")[1][1].endswith("got 'cubase'")


def test_serve_follows_from_the_command_line(tmp_path, models_dir, daw):
    import os
    import signal
    import subprocess
    import sys

    from .test_clients import ROOT

    port, listen = free_port(), free_port()
    command = ["serve", "--port", str(port), "--no-oscquery", "--follow", "reaper", "--daw-port", str(listen),
               "--daw-send-port", str(daw.port)]
    proc = subprocess.Popen([sys.executable, "-m", "bridge.cli", *command],
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        daw.expect("/action", timeout=30)
        daw.send("/tempo/raw", 101.0)
        c = Client(("127.0.0.1", port))
        try:
            seen: list[Any] = []

            def followed() -> bool:
                seen.append(c.ask(f"{P}/follow/status"))
                return seen[-1][1][2] == 101.0

            assert until(followed), seen[-3:]
        finally:
            c.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert f"following reaper: listening on udp://127.0.0.1:{listen}" in out


def test_the_reaper_pattern_file_sends_what_the_follower_reads():
    from .test_clients import ROOT

    patterns: dict[str, list[str]] = {}
    for line in (ROOT / "examples" / "wavestack.ReaperOSC").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, *values = line.split()
            patterns[key] = values
    for key, values in patterns.items():
        if key.startswith("DEVICE_"):
            assert values == ["0"], key
        else:  # REAPER's rule: a type flag from [nfbtrsi], then the address
            assert values and all(v[0] in "nfbtrsi" and v[1] == "/" for v in values), key
    sent = {v[1:] for values in patterns.values() for v in values if not v.isdigit()}
    assert {"/tempo/raw", "/time", "/beat/str", "/play", "/stop", "/action"} <= sent
