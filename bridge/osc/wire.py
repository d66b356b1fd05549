"""Byte-level checks of OSC packets, run by every socket that receives OSC before python-osc parses.

python-osc loops forever on some broken bundles (an element of size 0 or less) and reads missing
bytes as zeros; the checks here refuse such packets with a message that says what is wrong.
"""

from __future__ import annotations

from pythonosc.osc_message import OscMessage
from pythonosc.osc_packet import OscPacket
from pythonosc.parsing import osc_types

BUNDLE = b"#bundle\0"
MAX_NESTING = 8
MAX_MESSAGES = 64  # messages in one datagram: bounds the work and the replies one packet can cause


def _check_frame(data: bytes, depth: int = 0) -> None:
    """A message starts with '/'; a bundle is a time tag then elements of positive, 4-aligned,
    in-bounds sizes (nested at most MAX_NESTING deep)."""
    if not data.startswith(BUNDLE):
        if not data.startswith(b"/"):
            raise ValueError("an OSC packet starts with '/' (a message) or '#bundle'")
        return
    if depth >= MAX_NESTING:
        raise ValueError(f"bundles nested more than {MAX_NESTING} deep")
    if len(data) < 16:
        raise ValueError("bundle shorter than its header and time tag")
    at = 16
    while at < len(data):
        if at + 4 > len(data):
            raise ValueError("bundle element size is cut off")
        size = int.from_bytes(data[at:at + 4], "big", signed=True)
        if size <= 0 or size % 4 or at + 4 + size > len(data):
            raise ValueError(f"bundle element of size {size} at byte {at} does not fit the packet")
        _check_frame(data[at + 4:at + 4 + size], depth + 1)
        at += 4 + size


KNOWN_TAGS = set("ifsbhdtcrmTFN[]")  # what python-osc parses into values
MAX_ARRAY_DEPTH = 8  # arrays nested deeper are refused (python-osc and repr() recurse on them)


def _check_typetags(message: OscMessage) -> str:
    """Refuse what python-osc lets through: unknown type tags, or fewer values than tags promise.
    Returns the type tags (without the comma)."""
    dgram = message.dgram
    _, index = osc_types.get_string(dgram, 0)
    tags, _ = osc_types.get_string(dgram, index) if index < len(dgram) else (",", index)
    if not tags.startswith(","):
        raise ValueError(f"type tag string {tags!r} does not start with ','")
    unknown = set(tags[1:]) - KNOWN_TAGS
    if unknown:
        raise ValueError(f"unknown type tag(s) {''.join(sorted(unknown))}")
    depth = 0
    for tag in tags[1:]:
        depth += (tag == "[") - (tag == "]")
        if depth > MAX_ARRAY_DEPTH or depth < 0:
            raise ValueError(f"arrays nested more than {MAX_ARRAY_DEPTH} deep, or unbalanced")
    at = index + (len(tags) // 4 + 1) * 4 if index < len(dgram) else index
    for tag in tags[1:]:  # python-osc reads missing bytes as zeros: walk the values ourselves
        if tag in "ifcrm":
            at += 4
        elif tag in "hdt":
            at += 8
        elif tag == "s":
            end = dgram.find(b"\0", at)
            at = len(dgram) + 1 if end < 0 else (end // 4 + 1) * 4
        elif tag == "b":
            size = int.from_bytes(dgram[at:at + 4], "big") if at + 4 <= len(dgram) else len(dgram)
            at += 4 + -(-size // 4) * 4
        if at > len(dgram):
            raise ValueError(f"type tags {tags!r} promise more bytes than the packet's {len(dgram)}")
    return tags[1:]



def _alias_tags(data: bytes) -> bytes:
    """``data`` (already framed by ``_check_frame``) with the type tag ``S`` (an alternate string,
    as liblo and SuperCollider send) read as ``s``: the same bytes follow either tag."""
    if not data.startswith(BUNDLE):
        end = data.find(b"\0")
        at = (end // 4 + 1) * 4 if end >= 0 else len(data)
        if data[at:at + 1] != b",":
            return data
        stop = data.find(b"\0", at)
        stop = len(data) if stop < 0 else stop
        return data[:at] + data[at:stop].replace(b"S", b"s") + data[stop:]
    out, at = [data[:16]], 16
    while at < len(data):
        size = int.from_bytes(data[at:at + 4], "big", signed=True)
        out += [data[at:at + 4], _alias_tags(data[at + 4:at + 4 + size])]
        at += 4 + size
    return b"".join(out)


def parse(data: bytes) -> tuple[list[OscMessage], list[str]]:
    """The messages of a datagram and their type tags; ValueError saying what is wrong for
    anything malformed."""
    messages, tags, _ = parse_timed(data)
    return messages, tags


def parse_timed(data: bytes) -> tuple[list[OscMessage], list[str], list[float]]:
    """``parse``, with each message's time to take effect (seconds since the epoch, as a bundle's
    time tag says; the time of receipt for a bare message or an immediate or past tag)."""
    _check_frame(data)
    data = _alias_tags(data)
    try:
        timed = OscPacket(data).messages
    except Exception as exc:  # python-osc raises several kinds on garbage
        raise ValueError(f"not a valid OSC packet: {exc}") from None
    messages = [m.message for m in timed]
    if not messages:
        raise ValueError("no message in the packet (an empty or broken bundle)")
    if len(messages) > MAX_MESSAGES:
        raise ValueError(f"{len(messages)} messages in one packet; at most {MAX_MESSAGES}")
    return messages, [_check_typetags(message) for message in messages], [m.time for m in timed]
