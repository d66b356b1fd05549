"""The byte-level checks every OSC socket runs, fed literal datagrams (no socket)."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pythonosc.osc_message_builder import OscMessageBuilder

from bridge.osc import wire

PING = b"/wavestack/ping\0,\0\0\0"
TIME_TAG = b"\0\0\0\0\0\0\0\1"


@st.composite
def osc_messages(draw: st.DrawFn) -> bytes:
    """Well-formed messages of every type the quick parser takes, built by python-osc."""
    text = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=12)
    builder = OscMessageBuilder(address="/" + draw(text))
    kinds = {"i": st.integers(-2**31, 2**31 - 1), "h": st.integers(-2**63, 2**63 - 1),
             "f": st.floats(width=32), "d": st.floats(), "s": text, "b": st.binary(min_size=1, max_size=9),
             "T": st.just(True), "F": st.just(False), "N": st.none()}
    for kind in draw(st.lists(st.sampled_from(sorted(kinds)), max_size=6)):
        builder.add_arg(draw(kinds[kind]), arg_type=kind)
    return builder.build().dgram


@st.composite
def osc_garbage(draw: st.DrawFn) -> bytes:
    """Message-shaped bytes: an address, any type tags (S included), a random or cut body."""
    tags = draw(st.text(alphabet="ifsSbhdTFNt[]", max_size=6))
    head = b"/" + draw(st.binary(max_size=9)).replace(b"\0", b"a")
    head += b"\0" * (4 - len(head) % 4)
    tag_bytes = b"," + tags.encode()
    packet = head + tag_bytes + b"\0" * (4 - len(tag_bytes) % 4) + draw(st.binary(max_size=40))
    return packet[:draw(st.integers(len(head), len(packet)))]


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


def _python_osc(data: bytes):
    """What python-osc (behind the checks) reads from a bare message: (address, values, tags), or
    None where it refuses it."""
    from pythonosc.osc_packet import OscPacket

    try:
        message = OscPacket(wire._alias_tags(data)).messages[0].message
        return message.address, list(message.params), wire._check_typetags(message)
    except Exception:
        return None


def _same(a, b) -> bool:
    """Equal values, floats compared by their bits (NaN equals NaN)."""
    import struct

    if isinstance(a, float) and isinstance(b, float):
        return struct.pack(">d", a) == struct.pack(">d", b)
    return type(a) is type(b) and a == b


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(osc_messages(), osc_garbage()))
def test_the_quick_parser_reads_what_python_osc_reads(data):
    """Bare messages of common types are parsed in one pass; on every datagram it takes, the result
    is python-osc's, and what python-osc refuses it leaves to the full path."""
    quick = wire._quick(data)
    if quick is None:
        return
    reference = _python_osc(data)
    assert reference is not None, data
    (message, tags), (address, params, ref_tags) = quick, reference
    assert message.address == address and tags == ref_tags
    assert len(message.params) == len(params) and all(map(_same, message.params, params)), data


@settings(max_examples=500)
@given(osc_messages())
def test_every_well_formed_message_of_common_types_takes_the_quick_path(data):
    assert wire._quick(data) is not None
