"""Tempo and meter measured from a DAW's bar|beat|tick playhead, for a DAW that sends neither.

Ardour's OSC surface sends its playhead every 100 ms as ``/position/bbt`` "BBB|bb|tttt" and
``/position/time`` "HH:MM:SS.mmm". Bars and beats count in the meter (a beat is the meter's note
value), ticks count 1920 to the *quarter note* — so in 6/8 the ticks of a beat run 0…959. Two
playhead points 100 ms apart therefore tell:

- the tempo, in quarter notes per minute (wavestack's tempo), from the ticks per second within a beat;
- the denominator, from the ticks one beat spans (7680 / denominator) when the beat changes;
- the numerator, from the beats one bar spans when the bar changes.

Measurements accumulate over a steady stretch of rolling (the tempo's error shrinks as 1/length).
Tempo, numerator and denominator are published together, once the stretch has crossed a bar line and
its tempo error is under 0.5 % (snapped to the coarsest of 1, 0.5, 0.1, 0.01 BPM within that error):
a change never shows half-measured. A point the stretch does not predict — a tempo or meter change,
a locate, a jump, a stop — ends it and a new one starts. Values measured before the DAW's session
changed, or before its bar|beat moved under a stopped playhead (the tempo map was edited), are kept but
no longer fresh until measured again.
"""

from __future__ import annotations

from dataclasses import dataclass

TICKS_PER_QUARTER = 1920
DENOMINATORS = (1, 2, 4, 8, 16, 32)
MAX_GAP = 1.0  # seconds between points beyond which they are not one stretch
TIME_RESOLUTION = 0.001  # /position/time is truncated to milliseconds
PUBLISH_ERROR = 0.005  # relative tempo error under which the tempo is published


@dataclass(frozen=True)
class Point:
    """One playhead report: seconds from the session start, bar, beat (from 1), tick in the beat."""
    seconds: float
    bar: int
    beat: int
    tick: int


def snap(value: float, error: float) -> float:
    """The coarsest round tempo (1, 0.5, 0.1 or 0.01 BPM steps) within ``error`` of ``value``."""
    for step in (1.0, 0.5, 0.1, 0.01):
        candidate = round(value / step) * step
        if abs(candidate - value) <= error:
            return round(candidate, 2)
    return round(value, 2)


class BarClock:
    """Measures tempo (quarter-note BPM), numerator and denominator from successive playhead points."""

    def __init__(self) -> None:
        self.tempo: float | None = None
        self.numerator: int | None = None
        self.denominator: int | None = None
        self.fresh: set[str] = set()  # of tempo/numerator/denominator: measured in this DAW session
        self._last: Point | None = None
        self._start: Point | None = None  # the current stretch: its first and last point,
        self._end: Point | None = None
        self._ticks = 0  # and the quarter ticks between them
        self._beat_ticks: int | None = None  # ticks per beat, confirmed in this stretch
        self._beats: int | None = None  # beats per bar, confirmed in this stretch

    def forget(self) -> None:
        """The DAW's session changed (closed, reopened, restarted): values are kept but not fresh."""
        self.fresh.clear()
        self._last = None
        self._restart(None)

    def point(self, p: Point) -> None:
        """Take one playhead point."""
        last, self._last = self._last, p
        if last is None:
            self._restart(p)
            return
        dt = p.seconds - last.seconds
        if dt == 0:
            if (p.bar, p.beat, p.tick) != (last.bar, last.beat, last.tick):
                self.fresh.clear()  # same time, new bar|beat: the tempo map changed under a stopped playhead
            self._restart(p)
            return
        if not 0 < dt <= MAX_GAP:
            self._restart(p)  # stopped, a locate, played backwards, or a gap
            return
        ticks = self._between(last, p, dt)
        if ticks is None or ticks < 0:
            self._restart(p)
            return
        if self._ticks > 0 and not self._predicted(p, ticks):
            self._restart(p)  # the tempo or meter changed between the two points
            return
        self._ticks += ticks
        self._end = p
        self._publish()

    # ------------------------------------------------------------------ inside
    def _restart(self, start: Point | None) -> None:
        self._start, self._end, self._ticks = start, start, 0
        self._beat_ticks = self._beats = None

    def _rate(self) -> float | None:
        """Quarter ticks per second over the stretch so far."""
        if self._start is None or self._end is None or self._ticks <= 0:
            return None
        span = self._end.seconds - self._start.seconds
        return self._ticks / span if span > 0 else None

    def _error(self, rate: float) -> float:
        """Ticks the stretch's tick count may be off by: the time truncation at both ends, tick rounding."""
        return 2 * TIME_RESOLUTION * rate + 2

    def _predicted(self, p: Point, ticks: int) -> bool:
        """Does the stretch's rate so far predict ``p``?"""
        assert self._start is not None and self._end is not None
        span_before = self._end.seconds - self._start.seconds
        if span_before <= 0:
            return True
        rate = self._ticks / span_before
        expected = rate * (p.seconds - self._start.seconds)
        tolerance = 3 * self._error(rate) * (1 + (p.seconds - self._end.seconds) / span_before)
        return abs(self._ticks + ticks - expected) <= tolerance

    def _between(self, a: Point, b: Point, dt: float) -> int | None:
        """Quarter ticks from ``a`` to ``b`` (one bar at most apart), learning the beat and bar
        lengths on the way; None while what it takes to count them is not known yet."""
        if b.bar == a.bar and b.beat == a.beat:
            return b.tick - a.tick
        rate = self._rate()
        if b.bar == a.bar and b.beat > a.beat:
            if self._beat_ticks is None:
                if rate is None:
                    return None
                self._learn_beat(rate * dt - (b.tick - a.tick), b.beat - a.beat)
                if self._beat_ticks is None:
                    return None
            return (b.beat - a.beat) * self._beat_ticks + b.tick - a.tick
        if b.bar == a.bar + 1 and self._beat_ticks is not None:
            if self._beats is None:
                if rate is None:
                    return None
                beats = (rate * dt + a.tick - b.tick) / self._beat_ticks + a.beat - b.beat
                self._learn_bar(beats, a.beat)
                if self._beats is None:
                    return None
            return ((self._beats - a.beat + b.beat) * self._beat_ticks) + b.tick - a.tick
        return None

    def _learn_beat(self, ticks: float, beats: int) -> None:
        per_beat = ticks / beats
        for denominator in DENOMINATORS:
            span = 4 * TICKS_PER_QUARTER // denominator
            if abs(per_beat - span) <= 0.15 * span:
                self._beat_ticks = span
                return

    def _learn_bar(self, beats: float, at_least: int) -> None:
        whole = round(beats)
        if abs(beats - whole) <= 0.25 and max(1, at_least) <= whole <= 32:
            self._beats = whole

    def _publish(self) -> None:
        """Publish the stretch's tempo, numerator and denominator together, once all three are known
        (so a change never shows half-measured, as 90 BPM in the old meter)."""
        rate = self._rate()
        if rate is None or self._beat_ticks is None or self._beats is None:
            return
        relative = self._error(rate) / self._ticks
        if relative > PUBLISH_ERROR:
            return
        tempo = rate * 60.0 / TICKS_PER_QUARTER
        error = relative * tempo
        if self.tempo is None or abs(self.tempo - tempo) > error or not self.fresh:
            self.tempo = snap(tempo, error)
        self.numerator = self._beats
        self.denominator = 4 * TICKS_PER_QUARTER // self._beat_ticks
        self.fresh = {"tempo", "numerator", "denominator"}
