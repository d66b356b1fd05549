"""Tempo and meter measured from bar|beat|tick playhead points as Ardour sends them (every 100 ms,
time truncated to the millisecond, ticks of 1920 to the quarter note)."""

from __future__ import annotations

import math

import pytest

from bridge.osc.barclock import BarClock, Point, snap


def playhead(tempo: float, numerator: int, denominator: int, start: float, seconds: float,
             every: float = 0.1) -> list[Point]:
    """What Ardour reports rolling from ``start`` for ``seconds`` at one tempo and meter."""
    beat_ticks = 7680 // denominator
    points = []
    t = start
    while t < start + seconds:
        ticks = math.floor(t * tempo / 60 * 1920)
        beats, tick = divmod(ticks, beat_ticks)
        bar, beat = divmod(beats, numerator)
        points.append(Point(math.floor(t * 1000) / 1000, bar + 1, beat + 1, tick))
        t += every
    return points


@pytest.mark.parametrize("tempo, numerator, denominator", [
    (120, 4, 4), (90, 6, 8), (140, 3, 4), (75, 7, 8), (60, 2, 2), (100, 5, 16), (93.5, 4, 4), (200, 12, 8)])
def test_tempo_and_meter_are_measured_within_a_bar_or_two(tempo, numerator, denominator):
    clock = BarClock()
    bar = numerator * 4 / denominator * 60 / tempo
    for p in playhead(tempo, numerator, denominator, 0.042, 2 * bar + 0.6):
        clock.point(p)
    assert (clock.tempo, clock.numerator, clock.denominator) == (tempo, numerator, denominator)
    assert clock.fresh == {"tempo", "numerator", "denominator"}


def test_a_change_is_published_whole_never_half_measured():
    clock = BarClock()
    seen = set()
    for p in playhead(120, 4, 4, 0.0, 4.05) + playhead(90, 6, 8, 4.05, 6.0):
        clock.point(p)
        seen.add((clock.tempo, clock.numerator, clock.denominator))
    assert seen == {(None, None, None), (120, 4, 4), (90, 6, 8)}


def test_a_locate_a_stop_and_backwards_play_measure_nothing_new():
    clock = BarClock()
    for p in playhead(120, 4, 4, 0.0, 3.0):
        clock.point(p)
    for p in [Point(10.0, 6, 1, 0), Point(10.0, 6, 1, 0), Point(9.5, 5, 4, 960), Point(9.0, 5, 3, 0)]:
        clock.point(p)
    assert (clock.tempo, clock.numerator, clock.denominator) == (120, 4, 4)
    assert clock.fresh == {"tempo", "numerator", "denominator"}
    clock.point(Point(9.0, 4, 2, 0))  # same time, new bar|beat: the map was edited under a stopped playhead
    assert clock.fresh == set() and clock.tempo == 120  # kept, but no longer claimed as measured


def test_snap_takes_the_roundest_tempo_the_error_allows():
    assert snap(119.97, 0.05) == 120.0
    assert snap(93.47, 0.05) == 93.5
    assert snap(93.43, 0.02) == 93.43
    assert snap(127.04, 0.3) == 127.0
