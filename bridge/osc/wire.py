"""Byte-level checks of OSC packets, run by every socket that receives OSC before python-osc parses,
and the encoder of the messages wavestack sends.

python-osc loops forever on some broken bundles (an element of size 0 or less) and reads missing
bytes as zeros; the checks here refuse such packets with a message that says what is wrong.
"""

from __future__ import annotations

import struct
import time
from typing import Any, NamedTuple

from pythonosc.osc_message import OscMessage
from pythonosc.osc_packet import OscPacket
from pythonosc.parsing import osc_types

BUNDLE = b"#bundle\0"
MAX_NESTING = 8
MAX_MESSAGES = 64  # messages in one datagram: bounds the work and the replies one packet can cause
_FLOAT, _INT = struct.Struct(">f"), struct.Struct(">i")
_INT64, _DOUBLE = struct.Struct(">q"), struct.Struct(">d")
QUICK_TAGS = frozenset("ifsSbhdTFN")  # a bare message of only these is parsed here, in one pass


class Message(NamedTuple):
    """One parsed OSC message: its address and values (as python-osc's OscMessage gives them)."""
    address: str
    params: list[Any]


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


def parse(data: bytes) -> tuple[list[Message | OscMessage], list[str]]:
    """The messages of a datagram and their type tags; ValueError saying what is wrong for
    anything malformed."""
    messages, tags, _ = parse_timed(data)
    return messages, tags


def _quick(data: bytes) -> tuple[Message, str] | None:
    """A bare message of common types (``QUICK_TAGS``), well formed, parsed in one pass — the same
    values python-osc reads, at a fraction of its cost; None for anything else (python-osc and the
    checks above then parse it, or say what is wrong)."""
    end, size = data.find(b"\0"), len(data)
    at = (end // 4 + 1) * 4
    if end < 1 or at >= size or data[at] != 44:  # 44: ','
        return None
    stop = data.find(b"\0", at)
    if stop < 0:
        return None
    tags = data[at + 1:stop].decode("latin-1")
    at = (stop // 4 + 1) * 4
    if at > size or not QUICK_TAGS.issuperset(tags):
        return None
    params: list[Any] = []
    try:
        for tag in tags:
            if tag == "i" or tag == "f":
                if at + 4 > size:
                    return None
                params.append((_INT if tag == "i" else _FLOAT).unpack_from(data, at)[0])
                at += 4
            elif tag == "s" or tag == "S":
                zero = data.find(b"\0", at)
                if zero < 0 or (zero // 4 + 1) * 4 > size:
                    return None
                params.append(data[at:zero].decode("utf-8"))
                at = (zero // 4 + 1) * 4
            elif tag == "h" or tag == "d":
                if at + 8 > size:
                    return None
                params.append((_INT64 if tag == "h" else _DOUBLE).unpack_from(data, at)[0])
                at += 8
            elif tag == "b":
                length = _INT.unpack_from(data, at)[0] if at + 4 <= size else -1
                if length < 0 or at + 4 + length + -length % 4 > size:
                    return None
                params.append(data[at + 4:at + 4 + length])
                at += 4 + length + -length % 4
            else:
                params.append({"T": True, "F": False, "N": None}[tag])
        address = data[:end].decode("utf-8")
    except UnicodeDecodeError:
        return None
    if at != size:
        return None
    return Message(address, params), tags.replace("S", "s")


def parse_timed(data: bytes) -> tuple[list[Message | OscMessage], list[str], list[float]]:
    """``parse``, with each message's time to take effect (seconds since the epoch, as a bundle's
    time tag says; the time of receipt for a bare message or an immediate or past tag)."""
    _check_frame(data)
    if not data.startswith(BUNDLE):
        quick = _quick(data)
        if quick is not None:
            return [quick[0]], [quick[1]], [time.time()]
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


def _padded(raw: bytes) -> bytes:
    """``raw`` and a NUL, padded with NULs to a multiple of 4 bytes (an OSC string)."""
    return raw + b"\0" * (4 - len(raw) % 4)


def encode(address: str, args: tuple[Any, ...] | list[Any]) -> bytes:
    """One OSC message, as python-osc's builder makes it (types inferred the same way: str s,
    bytes b, True T, False F, None N, int i — h beyond 32 bits —, float f), several times faster:
    every reply the server sends is encoded here."""
    tags, body = [","], []
    for value in args:
        if isinstance(value, str):
            tags.append("s")
            body.append(_padded(value.encode()))
        elif isinstance(value, bytes):
            tags.append("b")
            body.append(len(value).to_bytes(4, "big") + value + b"\0" * (-len(value) % 4))
        elif value is True or value is False:
            tags.append("T" if value else "F")
        elif isinstance(value, int):
            wide = value.bit_length() > 31
            tags.append("h" if wide else "i")
            body.append(value.to_bytes(8 if wide else 4, "big", signed=True))
        elif isinstance(value, float):
            tags.append("f")
            body.append(_FLOAT.pack(value))
        elif value is None:
            tags.append("N")
        else:
            raise ValueError(f"cannot send {type(value).__name__} {value!r} over OSC")
    return _padded(address.encode()) + _padded("".join(tags).encode()) + b"".join(body)
