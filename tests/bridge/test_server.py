"""The OSC server on real loopback sockets, driven by a python-osc client."""

from __future__ import annotations

import itertools
import json
import socket
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pythonosc.osc_message_builder import OscMessageBuilder

from bridge.osc.server import Server
from bridge.render.bwf import read_bext

from .conftest import Client, served

P = "/wavestack"


def add_track(client: Client, name: str = "keys", **settings) -> None:
    assert client.ask(f"{P}/track/add", name, "tiny") == (f"{P}/ack", [f"{P}/track/add"])
    for key, value in settings.items():
        args = value if isinstance(value, tuple) else (value,)
        assert client.ask(f"{P}/track/{key}", name, *args)[0] == f"{P}/ack"


def ping_delays(client: Client, n: int, pause: float = 0.0) -> list[float]:
    """Seconds from sending a ping to its pong, ``n`` times."""
    delays = []
    for _ in range(n):
        t = time.perf_counter()
        client.send(f"{P}/ping")
        client.until(f"{P}/pong", timeout=2)
        delays.append(time.perf_counter() - t)
        time.sleep(pause)
    return delays


def test_ping_answers_with_the_version(client):
    assert client.ask(f"{P}/ping") == (f"{P}/pong", ["0.1.0"])


def test_a_generated_stem_lands_in_the_project_at_its_bar(server, client):
    assert client.ask(f"{P}/tempo", 150)[0] == f"{P}/ack"  # an int where a float is meant
    assert client.ask(f"{P}/depth", 16.0)[0] == f"{P}/ack"  # a whole float where an int is meant
    add_track(client, bars=0.5, at_bar=5, seed=21)
    client.send(f"{P}/generate", "keys")
    address, (acked, job) = client.recv()
    assert address == f"{P}/ack" and acked == f"{P}/generate" and job == 1
    fractions = []
    while True:
        address, params = client.recv()
        if address == f"{P}/progress":
            fractions.append(params[1])
        elif address == f"{P}/seed":
            assert params == ["keys", 21]
        else:
            break
    assert address == f"{P}/done" and params[0] == job and fractions and fractions == sorted(fractions)
    deadline = time.monotonic() + 2  # forgotten right after the reply is sent
    while job in server.handlers.requesters and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job not in server.handlers.requesters and job not in server._last_progress  # nothing kept
    stem = params[1]
    info = sf.info(stem)
    bar = 4 * 60 / 150
    assert info.samplerate == 48000 and info.subtype == "PCM_16" and info.frames == round(0.5 * bar * 48000)
    assert read_bext(stem).time_reference == round(4 * bar * 48000)
    project = server.session.project
    manifest = json.loads(Path(project, "wavestack.json").read_text())
    assert manifest["renders"][0]["files"][0]["path"] == "Audio/01_keys_take1.wav"
    assert f"POSITION {4 * bar:.6f}" in Path(project, "wavestack.rpp").read_text()


def test_bad_requests_get_an_error_naming_what_is_allowed(server, client):
    assert client.ask(f"{P}/tempo", 900) == (
        f"{P}/error", [f"{P}/tempo", f"{P}/tempo: argument 'bpm' must be a number in [20, 300], got 900"])
    address, (where, text) = client.ask(f"{P}/track/seed", "nope", 2)
    assert where == f"{P}/track/seed" and "no track named 'nope'" in text
    address, (where, text) = client.ask(f"{P}/track/add", "x", "no-such-model")
    assert address == f"{P}/error" and "model 'no-such-model' not found" in text
    address, (where, text) = client.ask(f"{P}/track/add", "../../etc")
    assert "track name '../../etc' refused" in text
    address, (where, text) = client.ask("/other/thing", 1)
    assert where == "/other/thing" and "unknown address" in text
    add_track(client, "keys")
    address, (where, text) = client.ask(f"{P}/track/fx", "keys", '[{"plugin": "Reverb", "room_size": 7}]')
    assert "room_size must be in [0, 1], got 7" in text
    address, (where, text) = client.ask(f"{P}/track/primer", "keys", "/no/such.wav")
    assert "is outside the projects root" in text  # not whether it exists: nothing outside is probed
    inside = str(Path(server.session.project).parent / "no-such.wav")
    address, (where, text) = client.ask(f"{P}/track/primer", "keys", inside)
    assert "audio file not found" in text


def test_projects_and_audio_files_stay_inside_the_projects_root(server, client, tmp_path):
    outside = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    for path in ("/etc", str(outside), str(tmp_path / ".." / "x")):
        address, (_, text) = client.ask(f"{P}/project", path)
        assert address == f"{P}/error" and "outside the projects root" in text, path
    assert not outside.exists() and not Path("/etc/Audio").exists()
    (tmp_path / "link").symlink_to("/etc", target_is_directory=True)  # a symlink out is still out
    assert "outside the projects root" in client.ask(f"{P}/project", str(tmp_path / "link"))[1][1]
    add_track(client, "keys")
    address, (_, text) = client.ask(f"{P}/track/primer", "keys", "/etc/shadow")
    assert address == f"{P}/error" and "outside the projects root" in text
    state = {"tracks": [{"name": "a", "primer": "/etc/passwd"}]}
    assert "outside the projects root" in client.ask(f"{P}/state/set", json.dumps(state))[1][1]
    assert [t.name for t in server.session.tracks] == ["keys"]


def test_replies_also_go_to_a_subscribed_port(server, client):
    listener = Client(server.address)
    assert client.ask(f"{P}/subscribe", listener.sock.getsockname()[1])[0] == f"{P}/ack"
    client.send(f"{P}/ping")
    assert client.recv()[0] == f"{P}/pong"
    assert listener.recv() == (f"{P}/ack", [f"{P}/subscribe"])  # every reply, from now on
    assert listener.recv()[0] == f"{P}/pong"
    _address, (_where, text) = client.ask(f"{P}/subscribe", 9999, "example.com")
    assert "loopback or to the sender's own host" in text
    listener.close()


def test_ping_answers_within_50_ms_while_a_render_runs(server, client):
    add_track(client, seconds=240.0)  # the tiny model takes a few seconds to generate this
    client.send(f"{P}/generate", "keys")
    job = client.until(f"{P}/ack")[1][1]
    client.until(f"{P}/progress")
    arrivals = []
    for _ in range(4):  # progress keeps coming, at least every 0.5 s
        client.until(f"{P}/progress", timeout=2)
        arrivals.append(time.monotonic())
    assert max(b - a for a, b in itertools.pairwise(arrivals)) < 0.5
    delays = ping_delays(client, 5)
    assert server.jobs.get(job).state == "running"
    assert max(delays) < 0.05
    # cancelling stops the render and leaves nothing in the project
    client.send(f"{P}/job/cancel", job)
    _address, (where, text) = client.until(f"{P}/error", timeout=10)
    assert where == job and "cancelled" in text
    assert list((Path(server.session.project) / "Audio").iterdir()) == []
    assert client.ask(f"{P}/job/status", job) == (f"{P}/status",
                                                  [job, "cancelled", pytest.approx(0, abs=1), ""])


def test_generate_all_renders_every_track_and_the_mix(server, client):
    add_track(client, "a", seconds=0.2, seed=1)
    add_track(client, "b", seconds=0.2, seed=2, position=0.5)
    client.send(f"{P}/generate_all")
    job = client.until(f"{P}/ack")[1][1]
    address, params = client.until(f"{P}/done", f"{P}/error")
    assert address == f"{P}/done" and params[0] == job
    assert [p.rsplit("/", 1)[1] for p in params[1:]] == ["01_a_take1.wav", "02_b_take1.wav", "mix_take1.wav"]
    # a and b were generated as two rows of one pass; each is what it renders alone
    audio = Path(server.session.project) / "Audio"
    for name, stem in (("a", "01_a"), ("b", "02_b")):
        client.send(f"{P}/generate", name)
        assert client.until(f"{P}/done", f"{P}/error")[0] == f"{P}/done"
        takes = [sf.read(audio / f"{stem}_take{k}.wav")[0] for k in (1, 2)]
        assert np.array_equal(*takes)


def test_state_round_trips_and_a_64k_datagram_is_received(server, client):
    tracks: list[dict] = []  # /state/get of this would not fit a datagram: /track/list is checked
    chain = [{"plugin": "Gain", "gain_db": -1.5}] * 10
    while len(state := json.dumps({"tempo": 97.5, "meter": [3, 4], "tracks": tracks})) < 60_000:
        tracks.append({"name": f"track {len(tracks):03d}", "model": "tiny", "seconds": 1.0, "seed": 12345,
                       "temperature": 0.9, "top_p": 0.95, "gain_db": -3.0, "position": 1.5, "fx": chain})
    assert len(tracks) <= 128  # what a session holds
    assert len(state) < 65_000  # far beyond the 8 KiB the stdlib servers receive
    assert client.ask(f"{P}/state/set", state) == (f"{P}/ack", [f"{P}/state/set"])
    address, names = client.ask(f"{P}/track/list")
    assert address == f"{P}/tracks" and names == [t["name"] for t in tracks]
    address, (_where, text) = client.ask(f"{P}/state/get")
    assert address == f"{P}/error" and "more than one UDP datagram holds" in text
    small = json.dumps({"tempo": 97.5, "meter": [3, 4], "tracks": tracks[:3]})
    assert client.ask(f"{P}/state/set", small)[0] == f"{P}/ack"
    got = json.loads(client.ask(f"{P}/state/get")[1][0])
    assert got["tempo"] == 97.5 and got["meter"] == [3, 4] and [t["name"] for t in got["tracks"]] == \
        [t["name"] for t in tracks[:3]]
    assert got["project"] == server.session.project != ""  # the project folder stays
    assert client.ask(f"{P}/state/set", "{not json")[0] == f"{P}/error"


def test_a_burst_of_2000_messages_is_not_lost(server, client):
    before = server.stats["received"]
    for i in range(2000):
        client.send(f"{P}/job/status", 999 + i)  # each answered with an error: no such job
    deadline = time.monotonic() + 10
    while server.stats["received"] - before < 2000 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.stats["received"] - before == 2000


MALFORMED = [
    b"",
    b"garbage",
    b"/wavestack/ping",  # no padding, no type tags
    b"/wavestack/tempo\x00\x00\x00\x00,f\x00\x00",  # a float promised, none sent
    b"/wavestack/tempo\x00\x00\x00\x00,Q\x00\x00\x00\x00\x00\x01",  # unknown type tag
    b"#bundle\x00" + b"\x00" * 8 + struct.pack(">i", 1000) + b"/x",  # element longer than the bundle
    b"#bundle\x00" + b"\x00" * 4,  # truncated time tag
    b"#bundle\x00" + b"\x00" * 8 + struct.pack(">i", -5),  # negative element size
    b"#bundle\x00" + b"\x00" * 8 + struct.pack(">i", 0) + b"/x\x00\x00",  # size 0: python-osc loops forever
    b"\xff" * 70000,  # larger than a UDP datagram can be on loopback? (sent in pieces below)
]


def test_malformed_packets_are_counted_answered_and_survived(server, client):
    before = server.stats["malformed"]
    sent = 0
    for packet in MALFORMED:
        try:
            client.raw(packet[:65507])
            sent += 1
        except OSError:
            continue
    deadline = time.monotonic() + 5
    while server.stats["malformed"] - before < sent and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.stats["malformed"] - before == sent
    assert client.until(f"{P}/error")[1][0] == P
    assert client.ask(f"{P}/ping")[0] in (f"{P}/pong", f"{P}/error")
    assert client.until(f"{P}/pong", timeout=5)
    client.raw(MALFORMED[4])  # a readable address: the error names it
    _, (where, text) = client.until(f"{P}/error")
    assert where == f"{P}/tempo" and "unknown type tag(s) Q" in text


def test_the_server_binds_loopback_by_default(tiny_model, tmp_path):
    srv = Server(port=0)
    try:
        assert srv.address[0] == "127.0.0.1"
        assert srv.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= 1 << 20
    finally:
        srv.shutdown()


def test_primer_and_variation_tracks_render_from_files(server, client, tmp_path):
    clip = tmp_path / "clip.wav"
    sf.write(clip, [0.2, -0.2] * 4000, 22050)  # another rate: resampled to the model's
    add_track(client, "cont", seconds=0.3, seed=1, primer=str(clip))
    add_track(client, "var", seed=2, vary=(str(clip), 2))
    # the level is checked against the model when a render is asked for …
    assert client.ask(f"{P}/track/vary", "var", str(clip), 3)[0] == f"{P}/ack"
    client.send(f"{P}/generate", "var")
    _, (_, text) = client.until(f"{P}/error")
    assert "vary level 3, but tiny has 2 level(s)" in text  # … before any audio is generated
    assert client.ask(f"{P}/track/vary", "var", str(clip), 2)[0] == f"{P}/ack"
    for name in ("cont", "var"):
        client.send(f"{P}/generate", name)
        address, params = client.until(f"{P}/done", f"{P}/error")
        assert address == f"{P}/done", params
        info = sf.info(params[1])
        expected = 0.3 if name == "cont" else 8000 / 22050  # a variation keeps the source's length
        assert abs(info.frames / info.samplerate - expected) < 0.02


def test_rename_and_takes_list_newest_first_with_their_seeds(server, client):
    add_track(client, "keys", seconds=0.1, seed=5)
    add_track(client, "bass", seconds=0.1)
    assert client.ask(f"{P}/track/rename", "keys", "bass")[1][1].startswith("a track named 'bass' exists")
    assert client.ask(f"{P}/track/rename", "keys", "piano") == (f"{P}/ack", [f"{P}/track/rename"])
    assert client.ask(f"{P}/track/list") == (f"{P}/tracks", ["piano", "bass"])
    assert client.ask(f"{P}/track/takes", "piano") == (f"{P}/takes", ["piano", "[]"])
    for seed in (5, 6):
        assert client.ask(f"{P}/track/seed", "piano", seed)[0] == f"{P}/ack"
        client.send(f"{P}/generate", "piano")
        done = client.until(f"{P}/done")[1]
    address, (track, text) = client.ask(f"{P}/track/takes", "piano")
    takes = json.loads(text)
    assert (address, track) == (f"{P}/takes", "piano")
    assert [(t["take"], t["seed"]) for t in takes] == [(2, 6), (1, 5)]
    assert takes[0]["path"] == done[1] and Path(takes[0]["path"]).is_file()
    assert takes[0]["model"] == "tiny" and takes[0]["seconds"] == pytest.approx(0.1, abs=0.01)
    assert client.ask(f"{P}/track/takes", "nope")[0] == f"{P}/error"


def test_fx_catalog_lists_builtins_whose_defaults_build(client):
    from bridge.render.fx import parse_chain

    address, (text,) = client.ask(f"{P}/fx/catalog")
    catalog = json.loads(text)
    assert address == f"{P}/fx/catalog" and {"Reverb", "Compressor", "Delay"} <= set(catalog)
    assert "IIRFilter" not in catalog  # an abstract base: pedalboard refuses to build it
    assert catalog["Reverb"]["room_size"] == {"default": 0.5, "min": 0.0, "max": 1.0}
    for plugin, params in catalog.items():  # every default is inside its range and accepted
        step = {"plugin": plugin, **{k: p["default"] for k, p in params.items()}}
        parse_chain([step])
        for p in params.values():
            assert "min" not in p or p["min"] <= p["default"] <= p["max"]


def test_32_bit_osc_floats_arrive_as_the_decimal_that_was_sent(server, client):
    add_track(client, "keys", temperature=0.9, seconds=0.3)  # python-osc sends these as 'f' (float32)
    track = server.session.track("keys")
    assert (track.temperature, track.seconds) == (0.9, 0.3)


def test_polled_queries_stay_out_of_the_log_and_edits_are_logged(server, client, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="wavestack.server"):
        for _ in range(3):
            client.ask(f"{P}/ping")
            client.ask(f"{P}/state/get")
        client.ask(f"{P}/tempo", 99)
    lines = [r.getMessage() for r in caplog.records]
    assert not any("/ping" in line or "/state/get" in line for line in lines)
    assert any(line.startswith(f"{P}/tempo 99") for line in lines)


def test_reopening_a_project_loads_its_saved_session_and_never_empties_it(server, client, tmp_path):
    add_track(client, "keys", seconds=2.0, seed=5)
    add_track(client, "pad")
    assert client.ask(f"{P}/tempo", 97.0)[0] == f"{P}/ack"
    project = Path(server.session.project)
    server.shutdown()  # saves what is unsaved
    saved = (project / "wavestack-session.json").read_text()
    assert json.loads(saved)["tempo"] == 97.0
    again = Server(port=0, project=str(project))  # `wavestack serve --project DIR` run again
    again.start()
    try:
        assert [t.name for t in again.session.tracks] == ["keys", "pad"] and again.session.tempo == 97.0
        assert (project / "wavestack-session.json").read_text() == saved
        c = Client(again.address)
        other = tmp_path / "other"  # a folder with no session: the current one moves in with it
        address, args = c.ask(f"{P}/project", str(other))
        assert address == f"{P}/ack" and "no saved session" in args[1] and "2 track(s)" in args[1]
        assert c.ask(f"{P}/track/remove", "pad")[0] == f"{P}/ack"
        address, args = c.ask(f"{P}/project", str(project))  # back: its own session, both tracks
        assert address == f"{P}/ack" and "its saved session, 2 track(s)" in args[1]
        assert [t.name for t in again.session.tracks] == ["keys", "pad"]
        moved = json.loads((other / "wavestack-session.json").read_text())
        assert [t["name"] for t in moved["tracks"]] == ["keys"]
        c.close()
    finally:
        again.shutdown()


def test_a_project_whose_saved_session_is_unreadable_is_refused_and_left_as_it_is(client, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "wavestack-session.json").write_text('{"tracks": [')
    address, args = client.ask(f"{P}/project", str(broken))
    assert address == f"{P}/error" and "cannot be read" in args[1] and "left as it is" in args[1]
    assert (broken / "wavestack-session.json").read_text() == '{"tracks": ['


def test_a_packet_with_arrays_nested_1000_deep_is_answered_and_survived(client):
    tags = "," + "[" * 1000 + "]" * 1000
    client.raw(b"/wavestack/ping\0" + tags.encode() + b"\0" * (4 - len(tags) % 4))
    address, args = client.recv()
    assert address == f"{P}/error" and "nested more than" in args[1]
    assert client.ask(f"{P}/ping")[0] == f"{P}/pong"


def test_every_address_of_the_table_has_a_handler(server):
    from bridge.protocol import TABLE

    missing = [a.full for a in TABLE if server.dispatcher.routes[a.full] is None]
    assert missing == []


needs_zamverb = pytest.mark.skipif(not Path("/usr/lib/vst3/ZamVerb.vst3").exists(),
                                   reason="Debian zam-plugins is not installed (apt-get install zam-plugins)")


@needs_zamverb
def test_ping_answers_within_50_ms_and_edits_stay_in_order_while_a_plugin_loads(tmp_path, models_dir):
    """ZamVerb takes a minute or more to load; the server keeps answering meanwhile."""
    with served(tmp_path, models_dir) as (_, client):
        add_track(client)
        chain = json.dumps([{"vst3": "/usr/lib/vst3/ZamVerb.vst3"}])
        client.send(f"{P}/track/fx", "keys", chain)
        client.send(f"{P}/track/seed", "keys", 5)  # waits behind the plugin: edits keep their order
        time.sleep(0.5)
        delays = ping_delays(client, 10, pause=0.05)
        assert max(delays) < 0.05, delays
        client.send(f"{P}/state/get")
        with pytest.raises(TimeoutError):  # the state waits for the edits before it
            client.until(f"{P}/state", timeout=0.3)


def test_subscribers_are_bounded_and_the_servers_own_port_is_refused(server, client):
    from bridge.osc.server import MAX_SUBSCRIBERS

    assert client.ask(f"{P}/subscribe", server.address[1])[0] == f"{P}/error"  # it would answer itself
    for port in range(20000, 20000 + MAX_SUBSCRIBERS):
        assert client.ask(f"{P}/subscribe", port)[0] == f"{P}/ack"
    address, (_, text) = client.ask(f"{P}/subscribe", 30000)
    assert address == f"{P}/error" and f"{MAX_SUBSCRIBERS} ports subscribed" in text
    assert len(server.subscribers) == MAX_SUBSCRIBERS


def test_a_job_reply_too_big_for_a_datagram_still_names_its_job(server, client):
    server.send("/done", 7, *["Audio/" + "x" * 1000 + ".wav"] * 70, to=client.sock.getsockname())
    address, (job, text) = client.recv()
    assert address == f"{P}/error" and job == 7 and "more than one UDP datagram" in text


def test_a_session_holds_a_bounded_number_of_tracks(server, client, monkeypatch):
    from bridge.osc import handlers

    monkeypatch.setattr(handlers, "MAX_TRACKS", 3)
    for name in ("a", "b", "c"):
        add_track(client, name)
    address, (_, text) = client.ask(f"{P}/track/add", "d", "tiny")
    assert address == f"{P}/error" and "3 tracks, the most it holds" in text


def test_replies_sent_to_the_server_are_never_answered(server, client):
    before = server.stats["errors"]
    for path in ("/ack", "/error", "/pong", "/state"):
        client.send(f"{P}{path}", "x")
    assert client.ask(f"{P}/ping")[0] == f"{P}/pong"  # the first answer is the ping's: no reply loop
    assert server.stats["errors"] == before


def test_a_burst_of_edits_is_saved_once_after_it_and_shutdown_saves_the_rest(server, client):
    session_file = Path(server.session.project) / "wavestack-session.json"
    writes = []
    real = server.handlers.write_session

    def counted():  # the real write, counted
        writes.append(server.session.tempo)
        real()

    server.handlers.write_session = counted
    for bpm in range(60, 160):
        client.send(f"{P}/tempo", float(bpm))
    client.send(f"{P}/state/get")
    assert client.until(f"{P}/state")[0] == f"{P}/state"  # every edit before it has taken effect
    time.sleep(0.6)
    assert 1 <= len(writes) <= 3 and writes[-1] == 159.0
    assert json.loads(session_file.read_text())["tempo"] == 159.0
    client.send(f"{P}/tempo", 61.0)
    assert client.until(f"{P}/ack")[0] == f"{P}/ack"
    server.shutdown()
    assert json.loads(session_file.read_text())["tempo"] == 61.0


def test_a_session_that_cannot_be_saved_is_said_to_subscribers(server, client, tmp_path):
    listener = Client(server.address)
    try:
        assert listener.ask(f"{P}/subscribe", listener.sock.getsockname()[1])[0] == f"{P}/ack"
        session_file = Path(server.session.project) / "wavestack-session.json"
        session_file.unlink()
        session_file.mkdir()  # the file cannot be put in place: the next save fails
        client.send(f"{P}/tempo", 77.0)
        _, (where, text) = listener.until(f"{P}/error", timeout=5)
        assert where == f"{P}/project" and "could not be saved" in text and server.session.tempo == 77.0
    finally:
        listener.close()


def test_an_unknown_address_is_answered_with_the_nearest_real_ones(client):
    address, (where, text) = client.ask(f"{P}/track/seeds", "keys", 3)
    assert address == f"{P}/error" and where == f"{P}/track/seeds"
    assert f"did you mean {P}/track/seed" in text
    assert "did you mean" not in client.ask("/hello")[1][1]


def test_a_bundle_takes_effect_at_its_time_tag(server, client):
    from pythonosc.osc_bundle_builder import OscBundleBuilder

    def tempo_bundle(bpm: float, ahead: float) -> bytes:
        bundle = OscBundleBuilder(time.time() + ahead)
        message = OscMessageBuilder(address=f"{P}/tempo")
        message.add_arg(bpm)
        bundle.add_content(message.build())
        return bundle.build().dgram

    client.raw(tempo_bundle(133.0, 0.6))
    assert client.ask(f"{P}/ping")[0] == f"{P}/pong"
    server.settle()
    assert server.session.tempo == 120.0  # not yet
    assert client.until(f"{P}/ack", timeout=3)[1] == [f"{P}/tempo"]
    assert server.session.tempo == 133.0
    client.raw(tempo_bundle(90.0, 3600))
    _, (where, text) = client.until(f"{P}/error")
    assert where == f"{P}/tempo" and "ahead; at most 60 s" in text and server.session.tempo == 133.0


def test_a_smaller_receive_buffer_than_asked_is_said_with_how_to_raise_it(tiny_model, caplog):
    from bridge.osc.server import RECEIVE_BUFFER

    with caplog.at_level("WARNING", logger="wavestack.server"):
        srv = Server(port=0)
    try:
        warned = any("net.core.rmem_max" in r.getMessage() for r in caplog.records)
        assert warned == (srv.receive_buffer < RECEIVE_BUFFER)
        assert srv.receive_buffer == srv.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    finally:
        srv.shutdown()


def test_the_query_rate_limit_gives_each_sender_a_burst_then_a_rate():
    from bridge.osc.dispatch import RateLimit

    now = [0.0]
    limit = RateLimit(rate=10.0, burst=5, clock=lambda: now[0])
    a, b = ("127.0.0.1", 1), ("127.0.0.1", 2)
    assert [limit.allow(a) for _ in range(7)] == [True] * 5 + [False] * 2
    assert limit.allow(b)  # another sender has its own bucket
    now[0] += 0.25  # 2.5 tokens back
    assert [limit.allow(a) for _ in range(3)] == [True, True, False]
    now[0] += 100
    assert sum(limit.allow(a) for _ in range(10)) == 5  # never more than the burst saved up
    assert limit.warn(a) and not limit.warn(a)
    now[0] += 1.0
    assert limit.warn(a)


def test_a_flood_of_queries_is_answered_up_to_the_burst_with_one_error(server, client):
    from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder

    from bridge.osc.dispatch import QUERY_BURST, QUERY_RATE
    from bridge.osc.wire import MAX_MESSAGES

    bundle = OscBundleBuilder(IMMEDIATELY)
    for _ in range(MAX_MESSAGES):
        bundle.add_content(OscMessageBuilder(address=f"{P}/track/list").build())
    datagram = bundle.build().dgram
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)  # room for every answer
    sent = 2 * QUERY_BURST
    for _ in range(sent // MAX_MESSAGES):
        client.raw(datagram)
    lists, errors = 0, []
    while True:
        try:
            address, args = client.recv(timeout=2.0)
        except TimeoutError:
            break
        if address == f"{P}/tracks":
            lists += 1
        elif address == f"{P}/error":
            errors.append(args[1])
    # the burst is answered; what is refused gets one error; refills over the seconds this took
    # (QUERY_RATE a second) may answer a few more
    assert sent - QUERY_BURST >= server.dispatcher.queries.refused > sent - QUERY_BURST - QUERY_RATE
    assert lists <= sent - server.dispatcher.queries.refused and lists > 0
    # one error a second at most: the refusals above all came within a second or two
    assert 1 <= len(errors) <= 2 and all("too many queries from 127.0.0.1" in e for e in errors)
    assert client.ask(f"{P}/ping")[0] == f"{P}/pong"


def _own_network_address() -> str | None:
    """This machine's address on its network (the source of packets sent out), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # a documentation address: nothing is sent
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_only_this_machine_and_allowed_clients_are_heard(tiny_model):
    from bridge.osc.server import allowed_networks

    with pytest.raises(ValueError, match="--allow nonsense: not an address or network"):
        allowed_networks(("nonsense",))
    address = _own_network_address()
    if address is None:
        pytest.skip("this machine has no network address besides loopback")
    for allow, heard in (((), False), ((f"{address}/32",), True)):
        srv = Server(host="0.0.0.0", port=0, allow=allow, oscquery_port=0)
        srv.start()
        try:
            import http.client  # OSCQuery follows the same rule (the tree holds project paths)

            web = http.client.HTTPConnection(address, srv.oscquery.address[1], timeout=5,
                                             source_address=(address, 0))
            web.request("GET", "/")
            answer = web.getresponse()
            body = answer.read()
            web.close()
            assert (answer.status, b"CONTENTS" in body) == ((200, True) if heard else (403, False))
            client = Client((address, srv.address[1]))
            client.sock.close()
            client.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            client.sock.bind((address, 0))  # sends from the network address, not loopback
            client.send(f"{P}/ping")
            if heard:
                assert client.recv(timeout=5)[0] == f"{P}/pong"
            else:
                with pytest.raises(TimeoutError):
                    client.recv(timeout=0.5)
                assert srv.stats["ignored"] == 1 and srv.stats["received"] == 0
            local = Client(("127.0.0.1", srv.address[1]))  # this machine is always heard
            assert local.ask(f"{P}/ping")[0] == f"{P}/pong"
            local.close()
            client.close()
        finally:
            srv.shutdown()


def test_a_keeper_stays_and_a_deleted_take_goes_to_the_trash_recorded(server, client):
    add_track(client, "keys", seconds=0.1)
    for _ in range(3):
        client.send(f"{P}/generate", "keys")
        client.until(f"{P}/done")

    def takes() -> list[dict]:
        return json.loads(client.ask(f"{P}/track/takes", "keys")[1][1])

    first, second, third = (Path(t["path"]) for t in reversed(takes()))
    assert client.ask(f"{P}/take/keep", "keys", 1) == (f"{P}/ack", [f"{P}/take/keep"])
    assert [(t["take"], t["keeper"]) for t in takes()] == [(3, False), (2, False), (1, True)]
    address, (_, text) = client.ask(f"{P}/take/delete", "keys", 1)
    assert address == f"{P}/error" and "take 1 of keys is a keeper: unmark it" in text and first.is_file()
    assert client.ask(f"{P}/take/delete", "keys", 2) == (f"{P}/ack", [f"{P}/take/delete"])
    trash = Path(server.session.project) / "Audio" / ".trash"
    assert not second.exists() and (trash / second.name).is_file()  # moved, not unlinked
    assert [t["take"] for t in takes()] == [3, 1]
    assert client.ask(f"{P}/take/delete", "keys", 2)[1][1].startswith("track keys has no take 2")
    server.handlers.close()  # the project is released: its JSON and REAPER project are whole
    manifest = json.loads((Path(server.session.project) / "wavestack.json").read_text())
    entry = [r for r in manifest["renders"] if r.get("kind") == "trash"]
    assert entry and entry[0]["moved_to"] == f"Audio/.trash/{second.name}" and entry[0]["take"] == 2
    rpp = (Path(server.session.project) / "wavestack.rpp").read_text()
    assert second.name not in rpp and first.name in rpp and third.name in rpp
    from bridge.render.merge import merge

    merged = merge(Path(server.session.project).parent / "merged", [server.session.project])
    assert sorted(p.name for p in merged) == ["01_keys_take1.wav", "01_keys_take2.wav"]  # takes 1 and 3
    assert client.ask(f"{P}/take/keep", "keys", 1, 0)[0] == f"{P}/ack"  # unmarked: now it may go
    assert client.ask(f"{P}/take/delete", "keys", 1)[0] == f"{P}/ack"
    client.send(f"{P}/generate", "keys")
    assert client.until(f"{P}/done")[1][1].endswith("01_keys_take4.wav")  # numbers are never given again


def test_the_mixes_of_generate_all_are_the_takes_of_the_session(server, client):
    add_track(client, "keys", seconds=0.1)
    add_track(client, "bass", seconds=0.1)
    for _ in range(2):
        client.send(f"{P}/generate_all")
        client.until(f"{P}/done")
    mixes = json.loads(client.ask(f"{P}/track/takes", "(mix)")[1][1])
    assert [(t["take"], t["seed"], Path(t["path"]).name) for t in mixes] == [
        (2, -1, "mix_take2.wav"), (1, -1, "mix_take1.wav")]
    assert all(Path(t["path"]).is_file() for t in mixes)
    assert [t["take"] for t in json.loads(client.ask(f"{P}/track/takes", "keys")[1][1])] == [2, 1]
    assert client.ask(f"{P}/take/keep", "(mix)", 2)[0] == f"{P}/ack"
    assert client.ask(f"{P}/take/delete", "(mix)", 1)[0] == f"{P}/ack"
    mixes = json.loads(client.ask(f"{P}/track/takes", "(mix)")[1][1])
    assert [(t["take"], t["keeper"]) for t in mixes] == [(2, True)]
    trash = Path(server.session.project) / "Audio" / ".trash"
    assert (trash / "mix_take1.wav").is_file()
    assert client.ask(f"{P}/track/takes", "mix")[1][1].startswith("no track named")  # only "(mix)" is the mix


def test_a_first_render_says_it_prepares_the_fast_sampler(server, client, monkeypatch):
    """On a fresh installation the first render compiles the sampler (about a minute): the job says so
    as its phase, and goes back to rendering once audio comes."""
    from bridge.osc.handlers import PREPARING
    from engine import fastpath

    monkeypatch.setattr(fastpath, "will_compile", lambda: True)  # as with an empty compile cache
    add_track(client, seconds=0.5)
    client.send(f"{P}/generate", "keys")
    job = client.until(f"{P}/ack")[1][1]
    assert client.until(f"{P}/phase") == (f"{P}/phase", [job, PREPARING])
    assert client.until(f"{P}/phase", timeout=60) == (f"{P}/phase", [job, ""])  # rendering
    assert client.until(f"{P}/done", timeout=60)[1][0] == job
    assert client.ask(f"{P}/job/status", job)[1] == [job, "done", 1.0, ""]


def test_with_an_empty_compile_cache_a_render_would_compile(tmp_path, capsys):
    import os
    import subprocess
    import sys

    from engine import fastpath

    code = "from engine import fastpath; print(fastpath.will_compile())"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                           cwd=Path(__file__).parents[2], timeout=120)
    assert fresh.stdout.split()[-1] == "True", fresh.stderr[-500:]
    # another clone's compiled loop is no use to this one (numba keys its cache on the source's
    # folder and stamp): it would compile, and says so
    other = tmp_path / "engine_0123456789abcdef"
    other.mkdir()
    (other / Path(fastpath._run._cache._cache_file._index_path).name).write_bytes(b"not ours")
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                           cwd=Path(__file__).parents[2], timeout=120)
    assert again.stdout.split()[-1] == "True", again.stderr[-500:]
    # here the loop is compiled (the suite's first fixture): set-up's warm-up has nothing to do
    assert not fastpath.will_compile()
    fastpath.warm_up()
    assert "the fast sampler is compiled for this CPU already" in capsys.readouterr().err


def test_a_full_inbox_drops_what_does_not_fit_and_says_so(monkeypatch, caplog):
    """Datagrams wait in the inbox between the receive and the handling thread; beyond its bytes
    they are dropped, counted and logged (the kernel would drop them otherwise, silently)."""
    from bridge.osc import server as server_module

    monkeypatch.setattr(server_module, "INBOX_BYTES", 100)
    srv = Server(port=0)  # not started: nothing takes datagrams out of the inbox
    try:
        ping = b"/wavestack/ping\0,\0\0\0"  # 20 bytes: five fit
        for _ in range(8):
            srv._take(ping, ("127.0.0.1", 9))
        assert srv.inbox.qsize() == 5 and srv.stats["dropped"] == 3
        assert "dropped datagrams" in caplog.text
    finally:
        srv.shutdown()
