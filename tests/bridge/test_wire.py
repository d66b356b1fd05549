"""The byte-level checks every OSC socket runs, fed literal datagrams (no socket)."""

import pytest

from bridge.osc import wire

PING = b"/wavestack/ping\0,\0\0\0"
TIME_TAG = b"\0\0\0\0\0\0\0\1"


def bundle(*elements: bytes) -> bytes:
    return b"#bundle\0" + TIME_TAG + b"".join(len(e).to_bytes(4, "big") + e for e in elements)


def test_a_message_and_a_bundle_of_messages_parse():
    messages, tags = wire.parse(PING)
    assert [m.address for m in messages] == ["/wavestack/ping"] and tags == [""]
    messages, _ = wire.parse(bundle(PING, bundle(PING)))
    assert [m.address for m in messages] == ["/wavestack/ping"] * 2


@pytest.mark.parametrize(("data", "says"), [
    (b"#bundle\0" + TIME_TAG + (-8).to_bytes(4, "big", signed=True) + b"\0" * 4, "does not fit"),
    (b"#bundle\0" + TIME_TAG + (0).to_bytes(4, "big") + PING, "does not fit"),
    (b"#bundle\0" + TIME_TAG + (6).to_bytes(4, "big") + PING, "does not fit"),
    (b"#bundle\0" + TIME_TAG + b"\0\0", "cut off"),
    (b"#bund", "starts with"),
    (b"hello", "starts with"),
    (b"/x\0\0,q\0\0", "unknown type tag"),
    (b"/x\0\0,i\0\0", "not a valid OSC packet"),  # python-osc's own message, as a ValueError
    (b"/x\0\0,s\0\0abcd", "not a valid OSC packet"),
])
def test_broken_packets_are_refused_with_what_is_wrong(data, says):
    with pytest.raises(ValueError, match=says):
        wire.parse(data)


def test_bundles_and_arrays_nested_too_deep_are_refused():
    deep = PING
    for _ in range(wire.MAX_NESTING + 1):
        deep = bundle(deep)
    with pytest.raises(ValueError, match="nested more than"):
        wire.parse(deep)
    tags = "," + "[" * 1000 + "]" * 1000
    padded = tags.encode() + b"\0" * (4 - len(tags) % 4)
    with pytest.raises(ValueError, match="arrays nested more than"):
        wire.parse(b"/x\0\0" + padded)


def test_a_packet_holds_at_most_max_messages():
    assert len(wire.parse(bundle(*[PING] * wire.MAX_MESSAGES))[0]) == wire.MAX_MESSAGES
    with pytest.raises(ValueError, match=f"at most {wire.MAX_MESSAGES}"):
        wire.parse(bundle(*[PING] * (wire.MAX_MESSAGES + 1)))


def test_the_alternate_string_tag_s_reads_as_a_string():
    message = b"/wavestack/track/add\0\0\0\0,SS\0keys\0\0\0\0default\0"
    messages, tags = wire.parse(message)
    assert tags == ["ss"] and list(messages[0].params) == ["keys", "default"]
    messages, tags = wire.parse(bundle(PING, message))
    assert tags == ["", "ss"] and list(messages[1].params) == ["keys", "default"]
