"""The control window: session, tracks, track editor, jobs and takes — a view of the server's session.

The window keeps no session of its own. It asks the server for its state on connecting, after every
accepted edit and every two seconds, so closing and reopening it (or another client changing the
session) shows what the server holds. Edits go out as single protocol messages; the server's answer
(ack or error) comes back and an error is shown under the control that sent it.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QMainWindow,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from bridge.protocol import BY_PATH, MIX, PREFIX, ProtocolError, seconds_per_bar

from .arrangement import ArrangementView
from .client import OscClient
from .fields import FIELD_WIDTH, ErrorLabel
from .jobs_view import JobList
from .session_panel import SessionPanel
from .takes import TakeList, TakeTransport
from .track_editor import TrackEditor

POLL_MS = 2000
# a state asked for before an edit took effect would put the old value back on screen (and the next
# edit, built on it, would undo the first): states wait until the server has answered every edit,
# or until this long after the last one, if its answer was lost
EDIT_ANSWER_S = 2.0
NOTICE_MS = 15000  # a message about one event leaves the status bar after this (the jobs list keeps it)
TRACK_LIST_ADDRESSES = ("/track/add", "/track/remove", "/track/rename")
JOB_ADDRESSES = ("/generate", "/generate_all", "/job/cancel")
TAKE_ADDRESSES = (PREFIX + "/take/keep", PREFIX + "/take/delete")  # answered under the takes


class MainWindow(QMainWindow):
    def __init__(self, client: OscClient, settings: QSettings | None = None) -> None:
        super().__init__()
        self.client = client
        self.settings = settings or QSettings("wavestack", "wavestack-ui")
        self.state: dict[str, Any] | None = None
        self.models: list[str] = []
        self._pending_jobs: list[str] = []  # what each /generate awaiting its job id renders
        self._select_next: str | None = None  # a track to select once the state lists it
        self._unanswered: list[tuple[str, float]] = []  # edits sent, not answered yet: (address, when)
        self.setWindowTitle("wavestack")

        self.banner = ErrorLabel(self)
        self.banner.setStyleSheet("background: #fdecea; color: #8a1f11; padding: 6px;")
        self.session = SessionPanel(self)
        session_box = self._group("Session", self.session)

        self.track_list = QListWidget(self)
        self.track_list.setToolTip("tracks of the session, in stem order")
        self.track_list.currentTextChanged.connect(self._track_selected)
        self.add_button = QPushButton("Add…", self, clicked=self._ask_add)
        self.rename_button = QPushButton("Rename…", self, clicked=self._ask_rename)
        self.remove_button = QPushButton("Remove", self, clicked=lambda: self.remove_track(self.selected()))
        self.tracks_error = ErrorLabel(self)
        tracks = QWidget(self)
        box = QVBoxLayout(tracks)
        box.addWidget(self.track_list)
        row = QHBoxLayout()
        for b in (self.add_button, self.rename_button, self.remove_button):
            row.addWidget(b)
        box.addLayout(row)
        box.addWidget(self.tracks_error)

        self.editor = TrackEditor(self)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.editor)
        middle = QSplitter(Qt.Orientation.Horizontal, self)
        middle.addWidget(self._group("Tracks", tracks))
        middle.addWidget(self._group("Track", scroll))
        middle.setStretchFactor(1, 3)

        self.generate_button = QPushButton("Generate track  (Ctrl+G)", self, clicked=self.generate_track)
        self.generate_button.setToolTip(BY_PATH[PREFIX + "/generate"].help)
        self.generate_all_button = QPushButton("Generate all", self, clicked=self.generate_all)
        self.generate_all_button.setToolTip(BY_PATH[PREFIX + "/generate_all"].help)
        self.cancel_button = QPushButton("Cancel  (Esc)", self, clicked=self.cancel)
        self.cancel_button.setToolTip("cancel the selected job, or every running and queued one")
        self.jobs_error = ErrorLabel(self)
        actions = QHBoxLayout()
        for b in (self.generate_button, self.generate_all_button, self.cancel_button):
            actions.addWidget(b)
        self.jobs = JobList(self)
        self.takes = TakeList(self)
        self.transport = TakeTransport(self.takes, self)
        self.take_source = QComboBox(self)
        self.take_source.addItems(["this track", "session mixes"])
        self.take_source.setMaximumWidth(FIELD_WIDTH)
        self.take_source.setToolTip("whose takes the list shows: the selected track's, or the mixes of "
                                    "the whole session that Generate all renders")
        self.take_source.activated.connect(lambda _i: self._show_take_source())
        source_row = QHBoxLayout()
        source_row.addWidget(QLabel("Takes of", self))
        source_row.addWidget(self.take_source)
        source_row.addStretch(1)
        takes_box = QWidget(self)
        takes_layout = QVBoxLayout(takes_box)
        takes_layout.setContentsMargins(0, 0, 0, 0)
        takes_layout.addLayout(source_row)
        takes_layout.addWidget(self.takes)
        takes_layout.addWidget(self.transport)
        bottom = QSplitter(Qt.Orientation.Horizontal, self)
        bottom.addWidget(self._group("Jobs", self.jobs))
        bottom.addWidget(self._group("Takes (drag into the DAW)", takes_box))

        self.arrangement = ArrangementView(self)
        self.arrangement.track_clicked.connect(self.select_track)

        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.addWidget(self.banner)
        layout.addWidget(session_box)
        layout.addWidget(middle, 3)
        layout.addWidget(self._group("Arrangement (bars of the session)", self.arrangement), 1)
        layout.addLayout(actions)
        layout.addWidget(self.jobs_error)
        layout.addWidget(bottom, 1)
        self.setCentralWidget(central)
        self.panels = (session_box, middle, self.generate_button, self.generate_all_button)
        self._tab_order()

        self.session.edit.connect(lambda address, args: self.send(address, *args))
        self.editor.edit.connect(lambda address, args: self.send(address, self.selected(), *args))
        self.takes.use.connect(self._use_take)
        QShortcut(QKeySequence("Ctrl+G"), self, activated=self.generate_track)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, activated=self.cancel)
        QShortcut(QKeySequence(Qt.Key.Key_Space), self, activated=self.transport.toggle)
        client.replied.connect(self.on_reply)
        client.connection_changed.connect(self.on_connection)
        self._refresh = QTimer(self, singleShot=True, interval=30, timeout=self.request_state)
        self._poll = QTimer(self, interval=POLL_MS, timeout=self.request_state)
        self.on_connection(False, f"connecting to {client.host}:{client.port} …")
        geometry = self.settings.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(980, 820)

    def _group(self, title: str, widget: QWidget) -> QGroupBox:
        group = QGroupBox(title, self)
        box = QVBoxLayout(group)
        box.setContentsMargins(6, 6, 6, 6)
        box.addWidget(widget)
        return group

    def _tab_order(self) -> None:
        s, e = self.session, self.editor
        chain = [s.project.editor, s.tempo.editor, s.numerator.editor, s.denominator.editor, s.rate.editor,
                 s.depth.editor, self.track_list, self.add_button, self.rename_button, self.remove_button,
                 e.model.editor, e.seconds.editor, e.bars.editor, e.length_unit, e.position.editor,
                 e.at_bar.editor, e.position_unit, e.seed.editor, e.dice, e.lock, e.temperature.editor,
                 e.top_p.editor, e.gain.editor, e.fx.list, e.primer.editor, e.vary.editor,
                 self.generate_button, self.generate_all_button, self.cancel_button, self.jobs, self.takes]
        for first, second in itertools.pairwise(chain):
            QWidget.setTabOrder(first, second)

    # ------------------------------------------------------------------ state
    def selected(self) -> str:
        item = self.track_list.currentItem()
        return item.text() if item is not None else ""

    def track_state(self, name: str) -> dict[str, Any] | None:
        return next((t for t in (self.state or {}).get("tracks", []) if t["name"] == name), None)

    def seconds_per_bar(self) -> float:
        state = self.state or {"tempo": 120.0, "meter": [4, 4]}
        return seconds_per_bar(state["tempo"], state["meter"])

    def select_track(self, name: str) -> None:
        rows = self.track_list.findItems(name, Qt.MatchFlag.MatchExactly)
        if rows:
            self.track_list.setCurrentItem(rows[0])

    def request_state(self) -> None:
        if self.client.connected:
            self.client.send("/state/get")
            self.client.send("/follow/status")
            if self.take_owner():
                self.client.send("/track/takes", self.take_owner())

    def request_all_takes(self) -> None:
        """Every track's takes, for the arrangement: on connecting, when the track list changes
        and when a render is done (not on every poll: that is the selected track's alone)."""
        if self.client.connected:
            for track in (self.state or {}).get("tracks", []):
                self.client.send("/track/takes", track["name"])
            if self.take_owner() == MIX:
                self.client.send("/track/takes", MIX)

    # ------------------------------------------------------------------ sending
    def send(self, address: str, *args: Any) -> None:
        """Send ``PREFIX + address``; a value the protocol refuses is shown without being sent."""
        try:
            self.client.send(address, *args)
        except ProtocolError as exc:
            self.show_error(PREFIX + address, str(exc))
            return
        self._unanswered.append((PREFIX + address, time.monotonic()))

    def _answered(self, address: str) -> None:
        waiting = [a for a, _ in self._unanswered]
        if address in waiting:
            del self._unanswered[waiting.index(address)]

    def _edits_in_flight(self) -> bool:
        since = time.monotonic() - EDIT_ANSWER_S
        self._unanswered = [(a, t) for a, t in self._unanswered if t > since]
        return bool(self._unanswered)

    def add_track(self, name: str) -> None:
        model = "default" if "default" in self.models or not self.models else self.models[0]
        self._select_next = name
        self.send("/track/add", name, model)

    def rename_track(self, old: str, new: str) -> None:
        self._select_next = new
        self.send("/track/rename", old, new)

    def remove_track(self, name: str) -> None:
        if name:
            self.send("/track/remove", name)

    def generate_track(self) -> None:
        if self.selected():
            self._pending_jobs.append(self.selected())
            self.send("/generate", self.selected())

    def generate_all(self) -> None:
        self._pending_jobs.append("all tracks + mix")
        self.send("/generate_all")

    def cancel(self) -> None:
        selected = self.jobs.selected()
        active = self.jobs.active()
        for job in [selected] if selected in active else active:
            self.send("/job/cancel", job)

    def _ask_add(self) -> None:
        name, ok = QInputDialog.getText(self, "Add track", "Track name:")
        if ok and name:
            self.add_track(name)

    def _ask_rename(self) -> None:
        old = self.selected()
        name, ok = QInputDialog.getText(self, "Rename track", "New name:", text=old)
        if ok and name and old:
            self.rename_track(old, name)

    # ------------------------------------------------------------------ replies
    def on_connection(self, connected: bool, text: str) -> None:
        self.statusBar().showMessage(text)
        self.banner.show_text("" if connected else text)
        for panel in self.panels:
            panel.setEnabled(connected)
        if connected:
            self.client.send("/models")
            self.client.send("/fx/catalog")
            self.request_state()
            self.request_all_takes()
            self._poll.start()
        else:
            self._poll.stop()
            self.jobs.server_lost()

    def on_reply(self, address: str, args: list[Any]) -> None:
        handler = {
            "/state": self._on_state, "/models": self._on_models, "/ack": self._on_ack,
            "/error": self._on_error, "/progress": self._on_progress, "/done": self._on_done,
            "/phase": lambda args: self.jobs.phase(int(args[0]), str(args[1])),
            "/seed": self._on_seed, "/takes": self._on_takes, "/fx/catalog": self._on_catalog,
            "/follow": self._on_follow,
        }.get(address.removeprefix(PREFIX))
        if handler is not None:
            handler(args)

    def _on_state(self, args: list[Any]) -> None:
        if self._edits_in_flight():  # it may predate them: the one asked after their answers shows them
            return
        self.state = json.loads(args[0])
        self.session.show_state(self.state)
        names = [t["name"] for t in self.state["tracks"]]
        want = self._select_next if self._select_next in names else self.selected()
        if names != [self.track_list.item(i).text() for i in range(self.track_list.count())]:
            self.request_all_takes()
            self.track_list.blockSignals(True)
            self.track_list.clear()
            self.track_list.addItems(names)
            self.track_list.blockSignals(False)
        if want in names:
            self._select_next = None
        rows = self.track_list.findItems(want, Qt.MatchFlag.MatchExactly) if want else []
        if rows:
            self.track_list.setCurrentItem(rows[0])
        elif names and not self.selected():
            self.track_list.setCurrentRow(0)
        self.editor.show_track(self.track_state(self.selected()), self.seconds_per_bar())
        self.arrangement.show_state(self.state)
        self.arrangement.show_selected(self.selected())
        self.rename_button.setEnabled(bool(names))
        self.remove_button.setEnabled(bool(names))
        self.generate_button.setEnabled(bool(self.selected()))  # nothing to render before a track exists
        self.generate_all_button.setEnabled(bool(names))

    def _on_follow(self, args: list[Any]) -> None:
        self.session.show_follow(args)
        daw, position = args[0], args[6]
        self.editor.playhead.setEnabled(daw != "none" and position >= 0)  # a playhead is known
        self.arrangement.show_playhead(position if daw != "none" and position >= 0 else None)

    def _track_selected(self, name: str) -> None:
        self.editor.show_track(self.track_state(name), self.seconds_per_bar())
        self.arrangement.show_selected(name)
        if self.take_owner() != MIX:
            self._show_take_source()

    # ------------------------------------------------------------------ takes
    def take_owner(self) -> str:
        """Whose takes the list shows: the selected track, or the session's mixes (MIX)."""
        return MIX if self.take_source.currentIndex() == 1 else self.selected()

    def _show_take_source(self) -> None:
        mixes = self.take_owner() == MIX
        self.takes.seed_action.setEnabled(not mixes)  # a mix has no seed of its own
        self.takes.show_takes([])
        if self.take_owner() and self.client.connected:
            self.client.send("/track/takes", self.take_owner())

    def _use_take(self, address: str, args: list[Any]) -> None:
        """A take action: keeping and deleting act on the take's owner, the others edit the selected
        track (a mix can be its primer or its variation source)."""
        owner = self.take_owner() if address.startswith("/take/") else self.selected()
        if owner:
            self.send(address, owner, *args)

    def _on_models(self, args: list[Any]) -> None:
        self.models = [str(a) for a in args]
        self.editor.set_models(self.models)

    def _on_catalog(self, args: list[Any]) -> None:
        self.editor.fx.set_catalog(json.loads(args[0]))

    def _on_ack(self, args: list[Any]) -> None:
        address = args[0]
        self._answered(address)
        if len(args) > 1 and not isinstance(args[1], int):  # what an ack says (opening a project)
            self.statusBar().showMessage(str(args[1]), NOTICE_MS)
        elif len(args) > 1:  # a job was queued
            what = self._pending_jobs.pop(0) if self._pending_jobs else address
            self.jobs.add(int(args[1]), what)
            self.jobs_error.show_text("")
            return
        self.show_error(address, "")
        self._refresh.start()
        if address in TAKE_ADDRESSES and self.take_owner():  # the list shows what the take became
            self.client.send("/track/takes", self.take_owner())

    def _on_error(self, args: list[Any]) -> None:
        where, text = args[0], str(args[1]) if len(args) > 1 else ""
        self._answered(where)
        if isinstance(where, int):
            self.jobs.failed(where, text)
            self.statusBar().showMessage(f"job {where}: {text}", NOTICE_MS)
            return
        if where in (PREFIX + "/generate", PREFIX + "/generate_all") and self._pending_jobs:
            self._pending_jobs.pop(0)
        self.show_error(where, text)
        self._refresh.start()  # controls go back to what the server holds

    def show_error(self, address: str, text: str) -> None:
        path = address.removeprefix(PREFIX)
        if self.session.set_error(path, text) or self.editor.set_error(path, text):
            return
        if path in TRACK_LIST_ADDRESSES:
            self.tracks_error.show_text(text)
            if text:
                self._select_next = None
        elif path in JOB_ADDRESSES:
            self.jobs_error.show_text(text)
        elif PREFIX + path in TAKE_ADDRESSES:
            self.transport.message.show_text(text)
        elif text:
            self.statusBar().showMessage(f"{address}: {text}", NOTICE_MS)

    def _on_progress(self, args: list[Any]) -> None:
        self.jobs.progress(int(args[0]), float(args[1]))

    def _on_done(self, args: list[Any]) -> None:
        self.jobs.done(int(args[0]), [str(a) for a in args[1:]])
        self.request_state()
        self.request_all_takes()

    def _on_seed(self, args: list[Any]) -> None:
        self.editor.show_seed(str(args[0]), int(args[1]))

    def _on_takes(self, args: list[Any]) -> None:
        takes = json.loads(args[1])
        if args[0] != MIX:
            self.arrangement.show_takes(args[0], takes)
        if args[0] == self.take_owner():
            self.takes.show_takes(takes)

    # ------------------------------------------------------------------ window
    def closeEvent(self, event: QCloseEvent) -> None:
        self.transport.player.stop()
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.sync()
        super().closeEvent(event)
