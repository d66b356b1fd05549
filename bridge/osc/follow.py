"""Follow a DAW's tempo, meter and transport over OSC: REAPER, Ardour, or Ableton Live (AbletonOSC).

A ``Follower`` listens on a UDP port for what the DAW sends, keeps a ``Transport`` (tempo, meter,
playing, playhead in seconds, when it last heard the DAW) and calls back when something changed.
It greets the DAW when it starts and every few seconds after (REAPER: refresh the surfaces, since
REAPER sends tempo only on change; AbletonOSC: start listeners and ask for the values), so a DAW that
answers is known to be alive; Ardour is registered as a surface only while it is quiet (it answers each
registration with a full dump and resets the surface, and its heartbeat every second proves it alive).
If the DAW goes silent, the last known values stay and the state says ``silent``. ``Transport.measured``
names what the DAW itself reported (or what was measured from it); the rest is the session's own.

What each DAW sends (and what it does not):
- REAPER (Default.ReaperOSC or examples/wavestack.ReaperOSC): ``/tempo/raw`` BPM, ``/time`` seconds,
  ``/beat/str`` "bar.beat.hundredths", ``/play`` ``/stop`` ``/pause`` 1/0. No time signature: the
  numerator is read off ``/beat/str`` (the last beat of a bar heard from its first beat on).
- Ardour (OSC surface on UDP 3819, replies to UDP 8000 by default): ``/transport_play`` ``/ffwd``
  ``/rewind`` (rolling at speed 1, faster, backwards), ``/transport_stop``, ``/position/time``
  "HH:MM:SS.mmm", ``/position/bbt`` "BBB|bb|tttt", ``/heartbeat``, ``/session_name``. No tempo and no
  meter: both are measured from the playhead (see ``barclock``).
- Ableton Live with AbletonOSC (UDP 11000, answers on 11001): ``/live/song/get/tempo``,
  ``.../is_playing``, ``.../signature_numerator``, ``.../signature_denominator``,
  ``.../current_song_time`` (beats).
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bridge.osc import wire
from bridge.osc.barclock import BarClock, Point
from bridge.protocol import DAWS

log = logging.getLogger("wavestack.follow")
SILENT_AFTER = 10.0  # seconds without a message before the DAW counts as silent
GREET_EVERY = 3.0  # seconds between greetings (they double as keep-alive polls)
Message = tuple[str, list[Any]]
MEASURABLE = ("tempo", "numerator", "denominator")  # what a DAW may tell; the session keeps the rest


def measured_text(measured: set[str]) -> str:
    """What the DAW told, as the /follow reply says it: "tempo,numerator,denominator" or a part."""
    return ",".join(name for name in MEASURABLE if name in measured)


@dataclass
class Transport:
    """What a followed DAW last said: tempo, meter, playing, playhead, when it was heard."""
    daw: str
    tempo: float | None = None
    numerator: int | None = None
    denominator: int | None = None
    playing: bool = False
    position: float | None = None  # playhead, seconds from the project start
    heard: float | None = None  # time.monotonic() of the last message
    measured: set[str] = field(default_factory=set)  # of tempo/numerator/denominator: what the DAW told
    _bar: int = 0
    _beats: list[int] = field(default_factory=list)

    def state(self, now: float, silent_after: float = SILENT_AFTER) -> str:
        """off, waiting, following or silent, as the /follow reply says."""
        if self.heard is None:
            return "waiting"
        return "silent" if now - self.heard > silent_after else "following"

    def beat(self, bar: int, beat: int) -> None:
        """Learn the numerator from bar/beat positions: the last beat of a bar heard from beat 1 on."""
        if bar == self._bar + 1 and self._beats and self._beats[0] == 1 and beat == 1:
            numerator = max(self._beats)
            if 1 <= numerator <= 32:
                self.numerator = numerator
                self.measured.add("numerator")
        if bar != self._bar:
            self._bar, self._beats = bar, []
        if not self._beats or beat != self._beats[-1]:
            self._beats.append(beat)


def _on(value: Any) -> bool:
    return bool(value) and float(value) >= 0.5


# ---------------------------------------------------------------------- DAW adapters
class Reaper:
    """REAPER's default OSC surface."""
    listen_port, send_port = 9010, 8000
    REFRESH_ACTION = 41743  # "Control surface: Refresh all surfaces": resend tempo, time, play state

    def greet(self, quiet: bool) -> list[Message]:
        """Messages that make REAPER send its state (every time: it sends tempo only on change)."""
        return [("/action", [self.REFRESH_ACTION])]

    def handle(self, address: str, args: list[Any], t: Transport) -> None:
        """Apply one message from REAPER."""
        if address == "/tempo/raw" and args:
            t.tempo = float(args[0])
            t.measured.add("tempo")
        elif address == "/time" and args:
            t.position = float(args[0])
        elif address == "/beat/str" and args:
            m = re.match(r"\s*(-?\d+)\.(\d+)", str(args[0]))
            if m:
                t.beat(int(m.group(1)), int(m.group(2)))
        elif address == "/play" and args:
            t.playing = _on(args[0])
        elif address in ("/stop", "/pause") and args and _on(args[0]):
            t.playing = False


class Ardour:
    """Ardour's OSC surface (factory settings: it answers on UDP 8000 of the sender's address)."""
    listen_port, send_port = 8000, 3819
    # /set_surface feedback bits: 8 heartbeat, 16 master section (transport), 32 bar/beat, 2048 min/sec
    FEEDBACK = 8 | 16 | 32 | 2048

    def __init__(self) -> None:
        self.clock = BarClock()
        self._bbt: tuple[int, int, int] | None = None
        self._seconds: float | None = None

    def greet(self, quiet: bool) -> list[Message]:
        """Register as a surface, only while Ardour is quiet (each registration resets the surface)."""
        # bank_size 0 (no banking), strip_types 0, feedback, fader mode 0
        return [("/set_surface", [0, 0, self.FEEDBACK, 0])] if quiet else []

    def handle(self, address: str, args: list[Any], t: Transport) -> None:
        """Apply one message from Ardour."""
        if address in ("/transport_play", "/ffwd", "/rewind") and args and _on(args[0]):
            t.playing = True  # at speed 1, faster forwards, backwards
        elif address == "/transport_stop" and args and _on(args[0]):
            t.playing = False  # (/transport_play 0 alone means "not at speed 1", not stopped)
        elif address == "/session_name" and args:
            self.clock.forget()  # a session opened, reopened or closed (a blank name)
            t.measured = set()
            if not str(args[0]).strip():
                t.playing, t.position = False, None
        elif address == "/position/time" and args:
            m = re.match(r"(\d+):(\d+):(\d+(?:\.\d+)?)", str(args[0]))
            if m:
                self._seconds = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
                t.position = self._seconds
                self._pair(t)
        elif address == "/position/bbt" and args:
            m = re.match(r"\s*(\d+)\|(\d+)\|(\d+)", str(args[0]))
            if m:
                self._bbt = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
                self._pair(t)

    def _pair(self, t: Transport) -> None:
        """Ardour sends bar|beat and time one after the other: measure once both have arrived."""
        if self._bbt is None or self._seconds is None:
            return
        self.clock.point(Point(self._seconds, *self._bbt))
        self._bbt = self._seconds = None
        c = self.clock
        t.tempo, t.numerator, t.denominator = c.tempo, c.numerator, c.denominator
        t.measured = set(c.fresh)


class Ableton:
    """Live through AbletonOSC."""
    listen_port, send_port = 11001, 11000
    PROPERTIES = ("tempo", "is_playing", "signature_numerator", "signature_denominator", "current_song_time")

    def __init__(self) -> None:
        self._greeted = False

    def greet(self, quiet: bool) -> list[Message]:
        """Messages that make AbletonOSC send its state."""
        gets = [(f"/live/song/get/{p}", []) for p in self.PROPERTIES]
        if self._greeted:
            return gets[:1]  # a keep-alive poll; the listeners report changes
        self._greeted = True
        return [(f"/live/song/start_listen/{p}", []) for p in self.PROPERTIES] + gets

    def handle(self, address: str, args: list[Any], t: Transport) -> None:
        """Apply one message from AbletonOSC."""
        if not address.startswith("/live/song/get/") or not args:
            return
        name, value = address.rsplit("/", 1)[1], args[-1]
        if name == "tempo":
            t.tempo = float(value)
            t.measured.add("tempo")
        elif name == "is_playing":
            t.playing = _on(value)
        elif name == "signature_numerator":
            t.numerator = int(value)
            t.measured.add("numerator")
        elif name == "signature_denominator":
            t.denominator = int(value)
            t.measured.add("denominator")
        elif name == "current_song_time" and t.tempo:
            t.position = float(value) * 60.0 / t.tempo  # Live's song time is in beats


ADAPTERS: dict[str, Callable[[], Any]] = {"reaper": Reaper, "ardour": Ardour, "ableton": Ableton}
assert set(ADAPTERS) == set(DAWS), "one adapter per DAW the protocol offers"


# ---------------------------------------------------------------------- follower
class Follower:
    """Listens to one DAW on its own socket (through the wire checks) and reports changes."""
    def __init__(self, daw: str, on_change: Callable[[Transport, set[str]], None], *,
                 host: str = "127.0.0.1", listen_port: int | None = None, send_port: int | None = None,
                 silent_after: float = SILENT_AFTER, greet_every: float = GREET_EVERY) -> None:
        if daw not in ADAPTERS:
            raise ValueError(f"cannot follow {daw!r}: choose one of {', '.join(DAWS)}")
        self.adapter = ADAPTERS[daw]()
        self.transport = Transport(daw)
        self.on_change = on_change
        self.silent_after, self.greet_every = silent_after, greet_every
        self.daw_address = (host, send_port or self.adapter.send_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, self.adapter.listen_port if listen_port is None else listen_port))
        self.sock.settimeout(0.1)
        self.address: tuple[str, int] = self.sock.getsockname()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"wavestack-follow-{daw}", daemon=True)
        self._state = "waiting"
        self.received = 0  # datagrams handled

    @property
    def daw(self) -> str:
        """The DAW followed."""
        return self.transport.daw

    def start(self) -> Follower:
        """Greet the DAW and start listening."""
        log.info("following %s: listening on udp://%s:%d, greeting %s:%d", self.daw, *self.address,
                 *self.daw_address)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops listening at once (the port is free when this returns); no callback follows."""
        self._stop.set()
        self.sock.close()

    def state(self) -> str:
        """off, waiting, following or silent."""
        return self.transport.state(time.monotonic(), self.silent_after)

    def _greet(self) -> None:
        heard = self.transport.heard
        quiet = heard is None or time.monotonic() - heard > self.greet_every
        for address, args in self.adapter.greet(quiet):
            try:
                self.sock.sendto(wire.encode(address, args), self.daw_address)
            except OSError as exc:  # the DAW is not there (yet): keep listening
                log.debug("cannot greet %s at %s:%d: %s", self.daw, *self.daw_address, exc)

    def _loop(self) -> None:
        next_greet = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_greet:
                self._greet()
                next_greet = now + self.greet_every
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                data = None
            except OSError:
                break
            if data is not None:
                self.receive(data)
            self._check_state()

    def receive(self, data: bytes) -> None:
        """Handle one datagram from the DAW."""
        self.received += 1
        t = self.transport
        before = (t.tempo, t.numerator, t.denominator, t.playing, t.position, frozenset(t.measured))
        try:
            messages, _ = wire.parse(data)  # the server's checks: a broken bundle must not hang us
        except Exception as exc:  # a DAW's garbage must not stop following
            log.debug("unreadable packet from %s: %s", self.daw, exc)
            return
        for message in messages:
            try:
                self.adapter.handle(message.address, list(message.params), t)
            except (TypeError, ValueError) as exc:
                log.debug("ignored %s %r from %s: %s", message.address, message.params, self.daw, exc)
        t.heard = time.monotonic()
        after = (t.tempo, t.numerator, t.denominator, t.playing, t.position, frozenset(t.measured))
        names = ("tempo", "numerator", "denominator", "playing", "position", "measured")
        changed = {n for n, b, a in zip(names, before, after, strict=True) if b != a}
        state_changed = self._check_state(notify=False)
        if (changed or state_changed) and not self._stop.is_set():
            self.on_change(t, changed | ({"state"} if state_changed else set()))

    def _check_state(self, notify: bool = True) -> bool:
        state = self.state()
        if state == self._state:
            return False
        log.info("%s is %s", self.daw, state if state != "silent" else
                 f"silent (nothing for {self.silent_after:g} s): keeping the last tempo and position")
        self._state = state
        if notify and not self._stop.is_set():
            self.on_change(self.transport, {"state"})
        return True
