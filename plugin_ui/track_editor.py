"""The editor of one track: model, length, position, seed, sampling, gain, effects, primer/variation.

Every control is built from the protocol table (``ArgField``) and sends one message when an edit is
finished; ``show`` fills the controls from the server's session state. ``edit`` carries the address
and the arguments that follow the track name.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QStackedLayout,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from bridge.protocol import SEED_MAX

from .fields import ArgField, set_error_in
from .fx_editor import FxEditor

SECONDS, BARS = "seconds", "bars"


class TrackEditor(QWidget):
    edit = Signal(str, list)  # address below the prefix, arguments after the track name

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.track: dict[str, Any] | None = None
        self.seconds_per_bar = 2.0
        self.last_seed: dict[str, int] = {}
        # three pages, so that each fits the default window without scrolling
        self.tabs = QTabWidget(self)
        sound, effects, source = QWidget(self), QWidget(self), QWidget(self)
        self.tabs.addTab(sound, "Sound")
        self.tabs.addTab(effects, "Effects")
        self.tabs.addTab(source, "Primer && variation")
        self.empty = QLabel("No track yet: add one under Tracks (Add…) to set its sound here.", self)
        self.empty.setWordWrap(True)
        self.pages = QStackedLayout(self)  # before any track: a word of what to do, not blank controls
        self.pages.addWidget(self.empty)
        self.pages.addWidget(self.tabs)
        form = QFormLayout(sound)

        self.model = ArgField("/track/model", "model", self, choices=True)
        form.addRow("Model", self.model)

        self.length_unit = QComboBox(self)
        self.length_unit.addItems([SECONDS, BARS])
        self.length_unit.setToolTip("give the length in seconds, or in bars at the session tempo and meter")
        self.seconds = ArgField("/track/seconds", "seconds", self)
        self.bars = ArgField("/track/bars", "bars", self)
        self.length_unit.activated.connect(lambda _i: self._switch_length())
        form.addRow("Length", self._row(self.seconds, self.bars, self.length_unit))

        self.position_unit = QComboBox(self)
        self.position_unit.addItems([SECONDS, "bar"])
        self.position_unit.setToolTip("where the stem starts: seconds from the project start, or a bar")
        self.position = ArgField("/track/position", "seconds", self)
        self.at_bar = ArgField("/track/at_bar", "bar", self)
        self.position_unit.activated.connect(lambda _i: self._switch_position())
        self.playhead = QPushButton("At playhead", self,
                                    clicked=lambda: self.edit.emit("/track/at_playhead", []))
        self.playhead.setToolTip("place the track at the followed DAW's playhead (Follow DAW above)")
        form.addRow("Position", self._row(self.position, self.at_bar, self.position_unit, self.playhead))

        self.dice = QPushButton("Roll", self, clicked=self.roll)
        self.dice.setToolTip("a new random seed, kept for the next renders")
        self.lock = QCheckBox("lock", self)
        self.lock.setToolTip("locked: every render uses this seed; unlocked: a new random seed each time")
        self.lock.clicked.connect(self._lock_clicked)
        self.seed = ArgField("/track/seed", "seed", self, extra=(self.dice, self.lock))
        spin = self.seed.editor
        spin.setSpecialValueText("random")  # type: ignore[attr-defined]
        form.addRow("Seed", self.seed)

        self.temperature = ArgField("/track/temperature", "temperature", self)
        self.top_p = ArgField("/track/top_p", "top_p", self)
        self.gain = ArgField("/track/gain", "db", self)
        form.addRow("Randomness", self.temperature)
        form.addRow("Focus (top-p)", self.top_p)
        form.addRow("Gain (dB)", self.gain)

        self.fx = FxEditor(self)
        QVBoxLayout(effects).addWidget(self.fx)

        form = QFormLayout(source)
        self.primer = ArgField("/track/primer", "path", self, extra=self._file_buttons("/track/primer"))
        self.primer.setToolTip("an audio file the track continues from (its last seconds prime the model)")
        form.addRow("Primer", self.primer)
        self.vary_level = ArgField("/track/vary", "level", self)
        level_label = QLabel("keep level", self)
        level_label.setToolTip(self.vary_level.editor.toolTip())
        self.vary = ArgField("/track/vary", "path", self,
                             extra=(*self._file_buttons("/track/vary"), level_label, self.vary_level))
        form.addRow("Vary", self.vary)
        self._pages = {"/track/fx": effects, "/track/primer": source, "/track/vary": source}

        for field in (self.model, self.seconds, self.bars, self.position, self.at_bar, self.seed,
                      self.temperature, self.top_p, self.gain, self.primer):
            field.committed.connect(lambda v, a=field.address: self.edit.emit(a, [v]))
        self.vary.committed.connect(lambda _v: self._send_vary())
        self.vary_level.committed.connect(lambda _v: self._send_vary())
        self.fx.changed.connect(lambda chain: self.edit.emit("/track/fx", [json.dumps(chain)]))
        self.setEnabled(False)
        self.pages.setCurrentWidget(self.empty)

    @staticmethod
    def _row(*widgets: QWidget) -> QWidget:
        holder = QWidget()
        row = QHBoxLayout(holder)
        row.setContentsMargins(0, 0, 0, 0)
        for w in widgets:
            row.addWidget(w)
        row.addStretch(1)
        return holder

    def _file_buttons(self, address: str) -> tuple[QPushButton, QPushButton]:
        pick = QPushButton("…", self, clicked=lambda: self._pick(address))
        pick.setToolTip("choose an audio file")
        clear = QPushButton("×", self, clicked=lambda: self._set_file(address, ""))
        clear.setToolTip("clear")
        for b in (pick, clear):
            b.setMaximumWidth(28)
        return pick, clear

    # ------------------------------------------------------------------ fields by address (for errors)
    def fields(self) -> dict[str, Any]:
        return {f.address: f for f in (self.model, self.seconds, self.bars, self.position, self.at_bar,
                                       self.seed, self.temperature, self.top_p, self.gain, self.primer)
                } | {"/track/vary": self.vary, "/track/fx": self.fx, "/track/at_playhead": self.position}

    def set_error(self, address: str, text: str) -> bool:
        """Show an error under the field it is about, turning to the page that holds it."""
        shown = set_error_in(self.fields(), address, text)
        if shown and text:
            self.tabs.setCurrentWidget(self._pages.get(address, self.tabs.widget(0)))
        return shown

    # ------------------------------------------------------------------ from the server
    def set_models(self, names: list[str]) -> None:
        self.model.set_choices(names)

    def show_track(self, track: dict[str, Any] | None, seconds_per_bar: float) -> None:
        if track is not None and self.track is not None and track["name"] != self.track["name"]:
            for field in self.fields().values():
                field.set_error("")
        self.track, self.seconds_per_bar = track, seconds_per_bar
        self.setEnabled(track is not None)
        self.pages.setCurrentWidget(self.tabs if track is not None else self.empty)
        if track is None:
            return
        in_bars = track.get("bars") is not None
        self.length_unit.setCurrentText(BARS if in_bars else SECONDS)
        self.seconds.setVisible(not in_bars)
        self.bars.setVisible(in_bars)
        length = track["bars"] * seconds_per_bar if in_bars else track["seconds"]
        self.seconds.show_value(length)
        self.bars.show_value(track["bars"] if in_bars else length / seconds_per_bar)
        at_bar = track.get("at_bar") is not None
        self.position_unit.setCurrentText("bar" if at_bar else SECONDS)
        self.position.setVisible(not at_bar)
        self.at_bar.setVisible(at_bar)
        start = (track["at_bar"] - 1) * seconds_per_bar if at_bar else track["position"]
        self.position.show_value(start)
        self.at_bar.show_value(track["at_bar"] if at_bar else 1 + start / seconds_per_bar)
        for field in (self.model, self.seed, self.temperature, self.top_p, self.gain, self.primer, self.vary,
                      self.vary_level):
            field.show_value(track[field.arg.field])  # the attribute the table says it sets
        locked = track["seed"] >= 0
        self.lock.setChecked(locked)
        self.seed.editor.setEnabled(locked)
        self.fx.show_chain(track["fx"])
        self.tabs.setTabText(1, f"Effects ({len(track['fx'])})" if track["fx"] else "Effects")
        sources = sum(1 for v in (track["primer"], track["vary"]) if v)
        self.tabs.setTabText(2, f"Primer && variation ({sources})" if sources else "Primer && variation")

    def show_seed(self, track: str, seed: int) -> None:
        self.last_seed[track] = seed

    # ------------------------------------------------------------------ edits
    def _switch_length(self) -> None:
        field = self.bars if self.length_unit.currentText() == BARS else self.seconds
        self.edit.emit(field.address, [field.value()])

    def _switch_position(self) -> None:
        field = self.at_bar if self.position_unit.currentText() == "bar" else self.position
        self.edit.emit(field.address, [field.value()])

    def roll(self) -> None:
        self.edit.emit("/track/seed", [secrets.randbelow(SEED_MAX + 1)])

    def _lock_clicked(self, locked: bool) -> None:
        name = self.track["name"] if self.track else ""
        seed = self.last_seed.get(name, secrets.randbelow(SEED_MAX + 1)) if locked else -1
        self.edit.emit("/track/seed", [seed])

    def _send_vary(self) -> None:
        self.edit.emit("/track/vary", [self.vary.value(), self.vary_level.value()])

    def _pick(self, address: str) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Audio file", "",
                                              "Audio (*.wav *.flac *.ogg *.aiff);;All (*)")
        if path:
            self._set_file(address, path)

    def _set_file(self, address: str, path: str) -> None:
        field = self.primer if address == "/track/primer" else self.vary
        field.set_editor(path)
        field.editor.editingFinished.emit()  # type: ignore[attr-defined]
