from __future__ import annotations

import subprocess
import sys

import pytest

from bridge.protocol import ProtocolError, settings
from bridge.render.checks import check_session
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


def test_effects_are_checked_for_shape_when_parsed_and_by_building_them_before_use():
    with pytest.raises(ProtocolError, match="list of steps"):
        Track.from_dict({"name": "a", "fx": {"plugin": "Gain"}})
    session = Session.from_dict({"tracks": [{"name": "a", "fx": [{"plugin": "Nope"}]}]})
    assert session.tracks[0].fx == [{"plugin": "Nope"}]  # parsed as data, no plugin loaded
    with pytest.raises(FxError, match="unknown plugin"):
        check_session(session)


def test_the_session_parses_without_loading_plugins_or_torch():
    code = ("import sys; from bridge.session import Session; "
            "Session.from_dict({'tempo': 90, 'meter': [3, 4], 'master_fx': [{'plugin': 'Gain'}], "
            "'tracks': [{'name': 'a', 'bars': 2, 'fx': []}]}); "
            "print(sorted(m for m in ('torch', 'pedalboard', 'engine') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_session_and_track_attribute_is_set_by_an_address_of_the_table():
    from dataclasses import fields

    set_by_table = {arg.field.partition(".")[0] for group in ("session", "track")
                    for _, arg in settings(group)}
    assert {f.name for f in fields(Track)} - {"name"} <= set_by_table
    assert {f.name for f in fields(Session)} - {"tracks"} <= set_by_table
