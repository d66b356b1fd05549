"""The control window against a real server on loopback (tiny model), Qt offscreen."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import QUrl
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox

from bridge.osc.server import Server


def choose(combo: QComboBox, data) -> None:
    """What a click on a combo entry does."""
    index = combo.findData(data)
    assert index >= 0, f"{data!r} not offered"
    combo.setCurrentIndex(index)
    combo.activated.emit(index)


def finish(field, value) -> None:
    """What typing a value and leaving the control does."""
    field.editor.setFocus()
    field.editor.setValue(value) if hasattr(field.editor, "setValue") else field.editor.setText(value)
    field.editor.editingFinished.emit()
    field.editor.clearFocus()


def add_tiny_track(window, server, pump, name="keys"):
    window.add_track(name)
    assert pump(lambda: window.selected() == name)
    choose(window.editor.model.editor, "tiny")
    assert pump(lambda: server.session.track(name).model == "tiny")


def test_connects_edits_generates_and_drags_the_take(server, open_window, pump):
    window = open_window(server)
    assert not window.banner.isVisible() and "connected to wavestack" in window.statusBar().currentMessage()
    assert {"default", "tiny"} <= set(window.models)
    add_tiny_track(window, server, pump)
    e = window.editor
    finish(e.seconds, 0.3)
    finish(e.temperature, 0.9)
    e.dice.click()  # a fixed random seed: locked
    e.fx.plugins.setCurrentText("Reverb")
    e.fx.add_step({"plugin": "Reverb"})
    assert pump(lambda: server.session.track("keys").fx == [{"plugin": "Reverb"}])
    room = next(w for w in e.fx.params.findChildren(QDoubleSpinBox)
                if "room_size" in w.toolTip())
    assert room.suffix() == " %" and room.maximum() == 100  # an amount reads in %
    assert e.fx.params_form.labelForField(room).text() == "room size"
    freeze = next(w for w in e.fx.params.findChildren(QCheckBox) if "freeze_mode" in w.toolTip())
    assert e.fx.params_form.labelForField(freeze).text() == "freeze"  # a switch, not a float
    room.setValue(80)
    room.editingFinished.emit()
    track = server.session.track("keys")
    assert pump(lambda: track.fx == [{"plugin": "Reverb", "room_size": 0.8}])
    e.fx.bypass.click()
    assert pump(lambda: track.fx == [{"plugin": "Reverb", "room_size": 0.8, "bypass": True}])
    assert e.fx.list.item(0).text().endswith("bypassed")
    e.fx.bypass.click()
    assert pump(lambda: track.fx == [{"plugin": "Reverb", "room_size": 0.8}])
    assert (track.seconds, track.temperature) == (0.3, 0.9) and track.seed >= 0
    assert pump(lambda: e.lock.isChecked() and e.seed.value() == track.seed)  # the view follows the server

    replies = []
    window.client.replied.connect(lambda address, args: replies.append(address))
    window.generate_track()
    assert pump(lambda: window.jobs.state(1) == "done", timeout=60)
    assert "/wavestack/progress" in replies and window.jobs.bars[1].value() == 1000
    assert pump(lambda: window.takes.count() == 1)
    item = window.takes.item(0)
    path = item.data(256)
    assert Path(path).is_file() and Path(path).parent == Path(server.session.project) / "Audio"
    assert f"seed {track.seed}" in item.text() and not item.icon().isNull()
    mime = window.takes.mimeData([item])  # what a drag into the DAW carries
    assert mime.urls() == [QUrl.fromLocalFile(path)] and mime.urls()[0].toString().startswith("file:///")
    window.takes.setCurrentItem(item)
    window.takes.copy_path()
    assert window.takes.paths() == [path]
    from PySide6.QtGui import QGuiApplication

    assert QGuiApplication.clipboard().text() == path


def test_errors_show_next_to_the_control_that_caused_them(server, open_window, pump, tmp_path):
    window = open_window(server)
    s = window.session
    window.send("/tempo", 0)  # refused by the shared table before it leaves
    assert s.tempo.error.isVisible() and "must be a number in [20, 300], got 0" in s.tempo.error.text()
    finish(s.tempo, 100)
    assert pump(lambda: server.session.tempo == 100 and not s.tempo.error.isVisible())

    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    finish(s.project, str(a_file))  # refused by the server
    assert pump(lambda: s.project.error.isVisible())
    assert "exists and is not a folder" in s.project.error.text()
    assert pump(lambda: s.project.value() == server.session.project)  # back to what the server holds
    other = tmp_path / "other song"
    finish(s.project, str(other))  # accepted: the server's words go to the status bar
    assert pump(lambda: "opened" in window.statusBar().currentMessage())
    assert server.session.project == str(other) and not s.project.error.isVisible()
    assert pump(lambda: s.project.value() == str(other), timeout=0.5)  # and stays
    assert window.jobs.topLevelItemCount() == 0  # the answer is not taken for a queued job

    add_tiny_track(window, server, pump)
    e = window.editor
    finish(e.primer, str(tmp_path / "missing.wav"))
    assert pump(lambda: e.primer.error.isVisible())
    assert "audio file not found" in e.primer.error.text() and not e.temperature.error.isVisible()
    e.fx.add_step({"vst3": "/nowhere/Missing.vst3", "params": {}})
    assert pump(lambda: e.fx.error.isVisible()) and "VST3 plugin not found" in e.fx.error.text()
    window.add_track("keys")
    assert pump(lambda: window.tracks_error.isVisible()) and "exists already" in window.tracks_error.text()


def test_a_state_asked_for_before_an_edit_never_undoes_it_on_screen(server, open_window, pump):
    window = open_window(server)
    add_tiny_track(window, server, pump)
    fx = window.editor.fx
    fx.add_step({"plugin": "Reverb"})
    assert pump(lambda: fx.steps == [{"plugin": "Reverb"}] == server.session.track("keys").fx)
    acks = []
    window.client.replied.connect(lambda address, args: address.endswith("/ack") and acks.append(args))
    window.client.send("/state/get")  # a poll already on its way: answered with the chain before the edit
    fx.set_param(0, "room_size", 0.8)
    shown = []
    assert pump(lambda: shown.append(fx.steps) or any(a[0].endswith("/track/fx") for a in acks))
    assert pump(lambda: shown.append(fx.steps) or False, timeout=0.3) is False  # the refresh after it
    assert all(steps == [{"plugin": "Reverb", "room_size": 0.8}] for steps in shown)
    fx.set_param(0, "bypass", True)  # built on what the screen shows: the room size stays
    assert pump(lambda: server.session.track("keys").fx == [{"plugin": "Reverb", "room_size": 0.8,
                                                             "bypass": True}])


def test_disconnect_shows_how_to_start_a_server_and_reconnects(server, open_window, pump, tmp_path):
    window = open_window(server)
    port = server.address[1]
    server.shutdown()
    assert pump(lambda: window.banner.isVisible())
    assert f"wavestack serve --port {port}" in window.banner.text()
    assert not window.generate_button.isEnabled()
    window.jobs.add(1, "keys")  # a job the first server had queued …
    window.jobs.server_lost()
    assert window.jobs.state(1) == "lost"
    again = Server(port=port, project=str(tmp_path / "other"))
    again.start()
    try:
        assert pump(lambda: not window.banner.isVisible() and window.add_button.isEnabled())
        assert pump(lambda: window.session.project.value() == again.session.project)
        assert not window.generate_button.isEnabled()  # no track in this session: nothing to render
        assert window.editor.empty.isVisible() and not window.editor.tabs.isVisible()  # no blank controls
        window.jobs.add(1, "pad")  # … and the new server's job 1: one row each, the new one live
        rows = [window.jobs.topLevelItem(i).text(0) for i in range(window.jobs.topLevelItemCount())]
        assert rows == ["1", "(1)"] and window.jobs.state(1) == "queued"
    finally:
        again.shutdown()


def test_reopening_shows_the_same_session_and_geometry(server, open_window, pump):
    first = open_window(server)
    add_tiny_track(first, server, pump, "bass")
    finish(first.session.tempo, 97)
    choose(first.session.depth.editor, 16)
    assert pump(lambda: server.session.tempo == 97 and server.session.bit_depth == 16)
    assert pump(lambda: first.state["tempo"] == 97)
    unit = first.editor.length_unit  # 4 s becomes the same length in bars at 97 BPM, 4/4
    unit.setCurrentText("bars")
    unit.activated.emit(1)
    track = server.session.track("bass")
    assert pump(lambda: track.seconds is None and track.bars == pytest.approx(4 / (4 * 60 / 97), abs=0.005))
    first.resize(777, 655)
    first.close()
    second = open_window(server)
    assert second.session.tempo.value() == 97 and second.session.depth.value() == 16
    assert second.selected() == "bass" and second.editor.model.value() == "tiny"
    assert second.editor.length_unit.currentText() == "bars" and second.editor.bars.isVisibleTo(second)
    assert (second.width(), second.height()) == (777, 655)


def test_escape_cancels_the_running_job_and_tab_walks_the_form(server, open_window, pump, app):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    window = open_window(server)
    add_tiny_track(window, server, pump)
    finish(window.editor.seconds, 240.0)  # long enough to be running when Esc arrives
    window.activateWindow()
    QTest.keyClick(window, Qt.Key.Key_G, Qt.KeyboardModifier.ControlModifier)
    assert pump(lambda: window.jobs.state(1) == "running", timeout=30)
    QTest.keyClick(window, Qt.Key.Key_Escape)
    assert pump(lambda: window.jobs.state(1) == "cancelled", timeout=30)
    assert not list((Path(server.session.project) / "Audio").glob("*.wav"))

    s = window.session
    want = [s.project.editor, s.tempo.editor, s.numerator.editor, s.denominator.editor, s.rate.editor,
            s.depth.editor, window.track_list, window.add_button]
    s.project.editor.setFocus()
    walked = []
    for _ in range(len(want) - 1):
        QTest.keyClick(app.focusWidget(), Qt.Key.Key_Tab)
        app.processEvents()
        focus = app.focusWidget()
        walked.append(focus.parent() if focus.objectName() == "qt_spinbox_lineedit" else focus)
    assert walked == want[1:]


def test_following_a_daw_shows_its_tempo_and_places_a_track_at_its_playhead(server, open_window, pump):
    from tests.bridge.test_clients import free_port
    from tests.bridge.test_follow import FakeDaw

    window = open_window(server)
    add_tiny_track(window, server, pump)
    assert pump(lambda: window.generate_button.isEnabled())
    assert not window.editor.playhead.isEnabled()  # no DAW followed: no playhead to place it at
    daw = FakeDaw()
    try:
        window.send("/follow/set", "reaper", free_port(), daw.port)
        daw.expect("/action")
        for address, value in (("/tempo/raw", 87.0), ("/play", 1.0), ("/time", 12.5)):
            daw.send(address, value)
        s = window.session
        shown = "reaper: 87 BPM 4/4 (meter from the session), playing at 12.50 s"
        assert pump(lambda: shown in s.follow_status.text())
        assert s.follow.value() == "reaper" and not s.tempo.editor.isEnabled()
        assert pump(lambda: s.tempo.value() == 87.0)
        assert pump(lambda: window.editor.playhead.isEnabled())
        window.editor.playhead.click()
        assert pump(lambda: server.session.track("keys").position == 12.5)
        choose(s.follow.editor, "none")
        assert pump(lambda: server.follower is None and s.follow_status.text() == "not following a DAW")
        assert s.tempo.editor.isEnabled()
    finally:
        daw.close()


def test_a_value_typed_out_of_range_is_brought_in_range_and_said(server, open_window, pump):
    window = open_window(server)
    add_tiny_track(window, server, pump)
    bars = window.editor.bars
    window.editor.length_unit.setCurrentText("bars")
    bars.editor.setFocus()
    bars.editor.lineEdit().setText("999")  # what typing 9, 9, 9 leaves
    bars.editor.interpretText()
    bars.editor.editingFinished.emit()
    bars.editor.clearFocus()
    assert pump(lambda: server.session.track("keys").bars == 256.0)
    assert pump(lambda: "999 is outside [0.25, 256]: 256 is used" in bars.error.text())


def test_the_arrangement_shows_each_track_at_its_bars_and_selects_it_on_click(server, open_window, pump):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    window = open_window(server)
    view = window.arrangement
    window.send("/tempo", 90.0)
    window.send("/meter", 3, 4)
    add_tiny_track(window, server, pump, "keys")
    window.send("/track/at_bar", "keys", 5.0)
    window.send("/track/bars", "keys", 2.0)
    add_tiny_track(window, server, pump, "pad")
    window.send("/track/bars", "pad", 1.0)  # at bar 1, the default position

    def at(name, first, last):
        rect = view.block_rect(name)
        return abs(rect.left() - view.bar_x(first)) < 1.5 and abs(rect.right() - view.bar_x(last)) < 1.5

    assert pump(lambda: at("keys", 5, 7) and at("pad", 1, 2))
    assert not view.span(view.tracks[0])[2]  # no take yet: outlined where it will go
    window.select_track("pad")
    window.generate_track()
    assert pump(lambda: view.span(view.tracks[1])[2], timeout=30)  # its take, at bar 1 for one bar
    assert at("pad", 1, 2)
    window.send("/meter", 6, 8)  # six eighths at 120 quarter notes a minute: 1.5 s a bar
    window.send("/tempo", 120.0)
    window.send("/track/position", "keys", 3.0)  # in seconds: bar 3 ...
    window.send("/track/seconds", "keys", 3.0)  # ... to bar 5
    assert pump(lambda: view.meter == (6, 8) and at("keys", 3, 5))
    QTest.mouseClick(view, Qt.MouseButton.LeftButton, pos=view.block_rect("keys").center().toPoint())
    assert pump(lambda: window.selected() == "keys" and view.selected == "keys")


def window_with_takes(server, open_window, pump, takes: int = 1):
    """A window on ``server`` with a track "keys" of 0.2 s rendered ``takes`` times."""
    window = open_window(server)
    add_tiny_track(window, server, pump)
    window.send("/track/seconds", "keys", 0.2)
    for n in range(1, takes + 1):
        window.generate_track()
        assert pump(lambda n=n: window.takes.count() == n, timeout=30)
    return window


def test_a_take_becomes_the_primer_the_variation_source_or_the_seed_of_its_track(server, open_window, pump):
    window = window_with_takes(server, open_window, pump)
    window.takes.setCurrentRow(0)
    take = server.session.track("keys")  # its seed was random: the take knows which one it drew
    path = window.takes.paths([window.takes.item(0)])[0]
    window.takes.primer_action.trigger()
    assert pump(lambda: server.session.track("keys").primer == path)
    window.takes.vary_action.trigger()
    assert pump(lambda: server.session.track("keys").vary == path)
    assert take.seed == -1
    window.takes.seed_action.trigger()
    drawn = json.loads((Path(server.session.project) / "wavestack.json").read_text())["renders"][-1]["seed"]
    assert pump(lambda: server.session.track("keys").seed == drawn and window.editor.lock.isChecked())


def test_a_take_is_kept_then_deleted_from_its_menu(server, open_window, pump):
    window = window_with_takes(server, open_window, pump, takes=2)
    window.takes.setCurrentRow(1)  # take 1 (newest first)
    window.takes.keep_action.trigger()
    assert pump(lambda: window.takes.item(1).text().startswith("★ take 1"))
    window.takes.setCurrentRow(1)
    window.takes.delete_action.trigger()  # a keeper: refused, said under the takes
    assert pump(lambda: "is a keeper" in window.transport.message.text())
    window.takes.setCurrentRow(0)
    path = Path(window.takes.paths([window.takes.item(0)])[0])
    window.takes.delete_action.trigger()
    assert pump(lambda: window.takes.count() == 1 and window.takes.item(0).text().startswith("★ take 1"))
    assert not path.exists() and (path.parent / ".trash" / path.name).is_file()


def test_a_first_render_shows_that_it_prepares_the_fast_sampler(server, open_window, pump, monkeypatch):
    from engine import fastpath

    monkeypatch.setattr(fastpath, "will_compile", lambda: True)  # as on a fresh installation
    window = open_window(server)
    add_tiny_track(window, server, pump)
    window.send("/track/seconds", "keys", 1.0)
    window.generate_track()
    assert pump(lambda: 1 in window.jobs.items
                and "preparing the fast sampler" in window.jobs.items[1].text(2), timeout=30)
    assert pump(lambda: window.jobs.state(1) == "done", timeout=60)


def test_the_mixes_of_generate_all_are_listed_as_takes_of_the_session(server, open_window, pump):
    window = window_with_takes(server, open_window, pump)
    window.generate_all()
    assert pump(lambda: window.jobs.state(2) == "done", timeout=60)
    window.take_source.setCurrentIndex(1)
    window.take_source.activated.emit(1)
    assert pump(lambda: window.takes.count() == 1 and "mix_take1.wav" in window.takes.item(0).text()), \
        [window.takes.item(i).text() for i in range(window.takes.count())]
    assert not window.takes.seed_action.isEnabled()  # a mix has no seed to render again with
    window.takes.setCurrentRow(0)
    window.takes.keep_action.trigger()
    assert pump(lambda: window.takes.item(0).text().startswith("★"))
    window.takes.primer_action.trigger()  # a mix can prime the selected track
    mix = window.takes.paths([window.takes.item(0)])[0]
    assert pump(lambda: server.session.track("keys").primer == mix)
    window.take_source.setCurrentIndex(0)
    window.take_source.activated.emit(0)
    assert pump(lambda: window.takes.count() == 2 and "keys_take" in window.takes.item(0).text())


def test_a_notice_in_the_status_bar_goes_away_on_its_own(server, open_window, pump, monkeypatch):
    import plugin_ui.window as window_module

    monkeypatch.setattr(window_module, "NOTICE_MS", 300)
    window = open_window(server)
    window.send("/master/fx", '[{"plugin": "Nope"}]')  # an error no field of the window shows
    assert pump(lambda: "unknown plugin 'Nope'" in window.statusBar().currentMessage())
    assert pump(lambda: window.statusBar().currentMessage() == "", timeout=5)  # not left there stale
