"""Session settings: project folder, tempo, meter, sample rate and bit depth, from the protocol table."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from .fields import ArgField, set_error_in


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
        self.follow_status = QLabel("not following a DAW", self)
        self.follow = ArgField("/follow/set", "daw", self, extra=(self.follow_status,))
        box = QVBoxLayout(self)
        for pairs in ((("Project", self.project),),
                      (("Tempo (BPM)", self.tempo), ("Meter", self.numerator), ("/", self.denominator),
                       ("Sample rate", self.rate), ("Bit depth", self.depth)),
                      (("Follow DAW", self.follow),)):
            row = QHBoxLayout()
            for text, field in pairs:
                row.addWidget(QLabel(text, self))
                row.addWidget(field, 1 if field is self.project else 0)
            if pairs[0][1] is not self.project:
                row.addStretch(1)
            box.addLayout(row)
        for field in (self.project, self.tempo, self.rate, self.depth, self.follow):
            field.committed.connect(lambda v, a=field.address: self.edit.emit(a, [v]))
        for field in (self.numerator, self.denominator):
            field.committed.connect(lambda _v: self.edit.emit(
                "/meter", [self.numerator.value(), self.denominator.value()]))

    def fields(self) -> dict[str, ArgField]:
        return {f.address: f for f in (self.project, self.tempo, self.numerator, self.rate, self.depth,
                                       self.follow)}

    def set_error(self, address: str, text: str) -> bool:
        return set_error_in(self.fields(), address, text)

    def show_state(self, state: dict[str, Any]) -> None:
        self.project.show_value(state["project"])
        self.tempo.show_value(state["tempo"])
        self.numerator.show_value(state["meter"][0])
        self.denominator.show_value(state["meter"][1])
        self.rate.show_value(state["sample_rate"])
        self.depth.show_value(state["bit_depth"])

    def show_follow(self, status: list[Any]) -> None:
        """A /follow reply: daw, state, tempo, meter, playing, playhead, seconds since heard, what it told."""
        daw, state, tempo, numerator, denominator, playing, position, heard, measured = status
        self.follow.show_value(daw)
        following = (state == "following")
        self.tempo.editor.setEnabled(not following)  # the DAW sets them while it is followed
        self.numerator.editor.setEnabled(not following)
        self.denominator.editor.setEnabled(not following)
        if daw == "none":
            text = "not following a DAW"
        elif state == "waiting":
            text = f"waiting for {daw} …"
        else:
            where = f"at {position:.2f} s" if position >= 0 else ""
            transport = "playing" if playing else "stopped"
            text = f"{daw}: {tempo:g} BPM {numerator}/{denominator}{kept(measured)}, {transport} {where}"
            if state == "silent":
                text = f"{daw} silent for {heard:.0f} s — keeping " + text.split(": ", 1)[1]
        self.follow_status.setText(text)

    def _pick_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Project folder", self.project.value() or "")
        if folder:
            self.project.set_editor(folder)
            self.project.editor.editingFinished.emit()  # type: ignore[attr-defined]


def kept(measured: str) -> str:
    """What the followed DAW did not tell, in a musician's words: " (meter from the session)"."""
    told = set(measured.split(",")) - {""}
    missing = []
    if "tempo" not in told:
        missing.append("tempo")
    if not {"numerator", "denominator"} & told:
        missing.append("meter")
    elif "numerator" not in told:
        missing.append("beats per bar")
    elif "denominator" not in told:
        missing.append("beat unit (the meter's lower number)")
    return f" ({' and '.join(missing)} from the session)" if missing else ""
