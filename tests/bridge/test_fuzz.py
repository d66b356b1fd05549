"""Fuzzing the receive path: random bytes and OSC-shaped garbage never crash or stall the server."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pythonosc.osc_message_builder import OscMessageBuilder

from bridge.osc.server import Server
from bridge.protocol import TABLE

NOWHERE = ("127.0.0.1", 9)  # replies to the discard port go nowhere

osc_string = st.text(max_size=40).map(lambda s: s.encode("utf-8", "replace"))


def pad(b: bytes) -> bytes:
    return b + b"\0" * (4 - len(b) % 4)


@st.composite
def osc_like(draw: st.DrawFn) -> bytes:
    """Messages with real or random addresses, any type tags, truncated or extended bodies."""
    address = draw(st.sampled_from([a.full.encode() for a in TABLE]) | osc_string)
    tags = draw(st.text(alphabet="ifsbhdtTFNI[]QZ", max_size=8))
    body = draw(st.binary(max_size=64))
    packet = pad(address) + pad(b"," + tags.encode()) + body
    cut = draw(st.integers(0, len(packet)))
    return packet[:cut] if draw(st.booleans()) else packet


@st.composite
def bundles(draw: st.DrawFn) -> bytes:
    elements = draw(st.lists(osc_like() | st.binary(max_size=32), max_size=4))
    body = b"".join(struct.pack(">i", draw(st.sampled_from([len(e), -len(e) - 1, len(e) + 7]))) + e
                    for e in elements)
    return b"#bundle\0" + draw(st.binary(min_size=0, max_size=8)) + body


@st.composite
def valid_messages(draw: st.DrawFn) -> bytes:
    """Well-formed messages to real addresses with arguments of any type and value."""
    spec = draw(st.sampled_from(TABLE))
    builder = OscMessageBuilder(address=spec.full)
    text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\0"), max_size=30)
    values = st.integers(-(2**31), 2**31 - 1) | st.floats(width=32) | text | st.booleans()
    for value in draw(st.lists(values, max_size=4)):
        builder.add_arg(value)
    return builder.build().dgram


def test_random_and_malformed_packets_never_crash_the_server(tmp_path, monkeypatch, tiny_model):
    monkeypatch.chdir(tmp_path)  # fuzzed /project messages may create folders: keep them here
    server = Server(port=0)
    try:

        # a 2 s deadline per packet: a parser that loops forever fails here instead of hanging CI
        @settings(max_examples=1000, deadline=2000, suppress_health_check=list(HealthCheck))
        @given(st.binary(max_size=200) | osc_like() | bundles() | valid_messages())
        def feed(packet: bytes) -> None:
            before = dict(server.stats)
            server.handle(packet, NOWHERE)
            assert server.stats["received"] == before["received"] + 1

        feed()
        assert server.stats["malformed"] > 0
        # the server still works after the storm
        server.dispatch("/wavestack/tempo", [133], NOWHERE)
        server.settle()
        assert server.session.tempo == 133.0
    finally:
        server.shutdown()
