"""A session: tempo, meter, output format, project folder and tracks — all plain, validated data.

Every value is checked with the same argument specs the OSC protocol uses — the table says which
attribute each argument sets — so a session restored from JSON (``/state/set``, a saved session
file) obeys exactly the rules of the live messages. Pure: effects chains are checked for shape
here; loading their plugins to check their values is the renderer's job (``bridge.render.fx``).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from bridge.protocol import (
    BY_PATH,
    NULLABLE,
    PREFIX,
    Address,
    Arg,
    ProtocolError,
    chain_steps,
    seconds_per_bar,
    settings,
)

TRACK_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9 _.\-]{0,63}$")
MAX_TRACKS = 128  # its state fits one /state/get reply datagram unless the effects chains are long


def _spec(address: str, arg: str):
    return next(a for a in BY_PATH[PREFIX + address].args if a.name == arg)


def check(address: str, arg: str, value: Any) -> Any:
    """Validate one value against the protocol table's spec for ``address``'s ``arg``."""
    return _spec(address, arg).convert(value, PREFIX + address)


def _unknown(what: str, unknown: list[str], known: set[str]) -> str:
    return f"{what}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}"


def check_track_name(name: Any) -> str:
    """``name`` if it is a safe track name, else a ProtocolError."""
    if not isinstance(name, str) or not TRACK_NAME.match(name) or name.strip() != name:
        raise ProtocolError(
            f"track name {name!r} refused: use letters, digits, space, '_', '-', '.' (at most 64, "
            "not starting with '.' or a space) — names become file names inside the project"
        )
    return name


@dataclass
class Track:
    """One track: model, length, position, sampling, gain, effects, primer or source."""
    name: str
    model: str = "default"
    seconds: float | None = 4.0  # length in seconds, or …
    bars: float | None = None  # … in bars at the session tempo (exactly one is set)
    position: float = 0.0  # start in seconds, or …
    at_bar: float | None = None  # … as a bar number (1 = project start); wins when set
    seed: int = -1  # -1: a random seed, reported back and recorded
    temperature: float = 1.0
    top_p: float = 1.0
    gain_db: float = 0.0
    fx: list[dict[str, Any]] = field(default_factory=list)
    primer: str = ""  # audio file to continue
    vary: str = ""  # audio file to make a variation of …
    vary_level: int = 1  # … keeping its codes at this level

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Track:
        """A track from JSON data, checked as the OSC messages would be."""
        if not isinstance(data, dict):
            raise ProtocolError(f"a track must be a JSON object, got {data!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ProtocolError(_unknown("track", unknown, known))
        track = cls(name=check_track_name(data.get("name")))
        for address, arg in settings("track"):
            if arg.field not in data:
                continue
            value = data[arg.field]
            if value is None and arg.field in NULLABLE:
                setattr(track, arg.field, None)
            elif value is not None:
                setattr(track, arg.field, convert(address, arg, value))
        if track.bars is not None and data.get("seconds") is None:
            track.seconds = None  # a length in bars replaces the default length in seconds
        if (track.seconds is None) == (track.bars is None):
            raise ProtocolError(f"track {track.name}: give its length as seconds or as bars (exactly one)")
        return track


@dataclass
class Session:
    """Tempo, meter, output format, project folder and tracks."""
    project: str = ""
    tempo: float = 120.0
    meter: tuple[int, int] = (4, 4)
    sample_rate: int = 48000
    bit_depth: int = 24  # 16 / 24-bit PCM, 32 = float
    tracks: list[Track] = field(default_factory=list)
    master_fx: list[dict[str, Any]] = field(default_factory=list)

    @property
    def seconds_per_bar(self) -> float:
        """One bar at the session tempo and meter, in seconds."""
        return seconds_per_bar(self.tempo, self.meter)

    def length_of(self, track: Track) -> float:
        """A track's length in seconds."""
        return track.seconds if track.bars is None else track.bars * self.seconds_per_bar

    def position_of(self, track: Track) -> float:
        """Where a track starts, in seconds."""
        return track.position if track.at_bar is None else (track.at_bar - 1) * self.seconds_per_bar

    def track(self, name: str) -> Track:
        """The track called ``name``, or a ProtocolError listing the tracks."""
        for t in self.tracks:
            if t.name == name:
                return t
        names = ", ".join(t.name for t in self.tracks) or "none yet"
        raise ProtocolError(f"no track named {name!r} (tracks: {names})")

    def index_of(self, name: str) -> int:
        """1-based track number, used in stem file names."""
        return [t.name for t in self.tracks].index(name) + 1

    def to_dict(self) -> dict[str, Any]:
        """The session as JSON data."""
        data = asdict(self)
        data["meter"] = list(self.meter)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> Session:
        """A session from JSON data, checked as the OSC messages would be."""
        if not isinstance(data, dict):
            raise ProtocolError("session state must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ProtocolError(_unknown("session", unknown, known))
        s = cls()
        if "meter" in data and (not isinstance(data["meter"], list | tuple) or len(data["meter"]) != 2):
            raise ProtocolError("session: meter must be [numerator, denominator]")
        for address, arg in settings("session"):
            name, _, item = arg.field.partition(".")
            if name not in data:
                continue
            assign(s, arg.field, convert(address, arg, data[name][int(item)] if item else data[name]))
        tracks = data.get("tracks", [])
        if not isinstance(tracks, list):
            raise ProtocolError("session: tracks must be a list")
        if len(tracks) > MAX_TRACKS:
            raise ProtocolError(f"session: {len(tracks)} tracks; a session holds at most {MAX_TRACKS}")
        s.tracks = [Track.from_dict(t) for t in tracks]
        names = [t.name for t in s.tracks]
        if len(set(names)) != len(names):
            raise ProtocolError("session: track names must be unique")
        return s


def assign(target: Any, field: str, value: Any) -> None:
    """Set ``target``'s attribute ``field`` as the table names it ("meter.0": an item of a tuple)."""
    name, _, item = field.partition(".")
    if item:
        items = list(getattr(target, name))
        items[int(item)] = value
        value = tuple(items)
    setattr(target, name, value)


def convert(address: Address, arg: Arg, value: Any) -> Any:
    """``value`` as ``arg`` of ``address`` takes it; JSON attributes (effects chains) as data."""
    if arg.json:
        return chain_steps(value)
    return arg.convert(value, address.full, where=arg.field.partition(".")[0])
