from __future__ import annotations

import pytest

from bridge.protocol import ProtocolError
from bridge.render.fx import FxError
from bridge.session import Session, Track


def test_length_and_position_in_bars_follow_tempo_and_meter():
    s = Session.from_dict({"tempo": 90, "meter": [6, 8], "tracks": [{"name": "a", "bars": 2, "at_bar": 3}]})
    t = s.tracks[0]
    assert s.seconds_per_bar == pytest.approx(6 * (60 / 90) * 0.5)  # six eighth notes
    assert s.length_of(t) == pytest.approx(2 * s.seconds_per_bar) and t.seconds is None
    assert s.position_of(t) == pytest.approx(2 * s.seconds_per_bar)


def test_state_round_trips_through_json():
    s = Session.from_dict({"tempo": 100, "sample_rate": 44100, "bit_depth": 32,
                           "tracks": [{"name": "keys", "seconds": 3, "seed": 9,
                                       "fx": [{"plugin": "Gain", "gain_db": -3}]}]})
    assert Session.from_dict(s.to_dict()) == s


@pytest.mark.parametrize("name", ["../../x", "a/b", ".hidden", "", " pad", "x" * 65, 5])
def test_track_names_that_could_leave_the_project_are_refused(name):
    with pytest.raises(ProtocolError, match="track name"):
        Session.from_dict({"tracks": [{"name": name}]})


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"tempo": 5}, r"in \[20, 300\]"),
        ({"colour": 1}, "unknown key"),
        ({"tracks": [{"name": "a", "bars": 2, "seconds": 3}]}, "exactly one"),
        ({"tracks": [{"name": "a"}, {"name": "a"}]}, "unique"),
        ({"tracks": [{"name": "a", "temperature": 9}]}, "temperature"),
        ({"meter": [4]}, "numerator, denominator"),
    ],
)
def test_bad_state_is_refused_with_a_reason(state, message):
    with pytest.raises(ProtocolError, match=message):
        Session.from_dict(state)


def test_a_bad_effect_in_state_is_refused():
    with pytest.raises(FxError, match="unknown plugin"):
        Track.from_dict({"name": "a", "fx": [{"plugin": "Nope"}]})
