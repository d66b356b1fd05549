"""Session settings: project folder, tempo, meter, sample rate and bit depth, from the protocol table."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from .fields import ArgField


class SessionPanel(QWidget):
    edit = Signal(str, list)  # address below the prefix, arguments

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        choose = QPushButton("Choose…", self, clicked=self._pick_folder)
        choose.setToolTip("pick the DAW project folder; stems go to its Audio/ folder")
        self.project = ArgField("/project", "folder", self, extra=(choose,))
        self.tempo = ArgField("/tempo", "bpm", self)
        self.numerator = ArgField("/meter", "numerator", self)
        self.denominator = ArgField("/meter", "denominator", self)
        self.rate = ArgField("/rate", "hz", self)
        self.depth = ArgField("/depth", "bits", self)
        box = QVBoxLayout(self)
        for pairs in ((("Project", self.project),),
                      (("Tempo (BPM)", self.tempo), ("Meter", self.numerator), ("/", self.denominator),
                       ("Sample rate", self.rate), ("Bit depth", self.depth))):
            row = QHBoxLayout()
            for text, field in pairs:
                row.addWidget(QLabel(text, self))
                row.addWidget(field, 1)
            box.addLayout(row)
        for field in (self.project, self.tempo, self.rate, self.depth):
            field.committed.connect(lambda v, a=field.address: self.edit.emit(a, [v]))
        for field in (self.numerator, self.denominator):
            field.committed.connect(lambda _v: self.edit.emit(
                "/meter", [self.numerator.value(), self.denominator.value()]))

    def fields(self) -> dict[str, ArgField]:
        return {f.address: f for f in (self.project, self.tempo, self.numerator, self.rate, self.depth)}

    def set_error(self, address: str, text: str) -> bool:
        field = self.fields().get(address)
        if field is not None:
            field.set_error(text)
        return field is not None

    def show_state(self, state: dict[str, Any]) -> None:
        self.project.show_value(state["project"])
        self.tempo.show_value(state["tempo"])
        self.numerator.show_value(state["meter"][0])
        self.denominator.show_value(state["meter"][1])
        self.rate.show_value(state["sample_rate"])
        self.depth.show_value(state["bit_depth"])

    def _pick_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Project folder", self.project.value() or "")
        if folder:
            self.project.set_editor(folder)
            self.project.editor.editingFinished.emit()  # type: ignore[attr-defined]
