"""Editors built from the protocol table: the widget, range, choices and tooltip of an argument.

An ``ArgField`` edits one argument of one address (``/tempo`` ``bpm``, ``/track/gain`` ``db`` …). It
emits ``committed`` when the user finishes an edit that changes the value, shows the value the
server holds (``show`` leaves a field the user is editing alone), and shows an error under itself
until the next accepted value — so a refusal appears next to the control it concerns.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from bridge.protocol import BY_PATH, PREFIX, Arg

ERROR_STYLE = "color: #c0392b;"


def spec(address: str, name: str) -> Arg:
    return next(a for a in BY_PATH[PREFIX + address].args if a.name == name)


FIELD_WIDTH = 200  # widest a number or a choice gets: a maximised window does not stretch them
CHOICE_LABELS: dict[tuple[str, str], dict[Any, str]] = {  # how a choice reads, in a musician's words
    ("/rate", "hz"): {44100: "44.1 kHz", 48000: "48 kHz", 96000: "96 kHz"},
    ("/depth", "bits"): {16: "16-bit PCM", 24: "24-bit PCM", 32: "32-bit float"},
}


def tooltip(address: str, arg: Arg) -> str:
    return f"{BY_PATH[PREFIX + address].help}\n{arg.help}: {arg.allowed()}\nOSC: {PREFIX}{address}"


def decimals(arg: Arg) -> int:
    step = (arg.max or 1000) - (arg.min or 0)
    return 3 if step <= 2 else 2


class ErrorLabel(QLabel):
    """A message in red under the control it concerns; hidden while there is none."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setStyleSheet(ERROR_STYLE)
        self.setWordWrap(True)
        self.hide()

    def show_text(self, text: str) -> None:
        self.setText(text)
        self.setVisible(bool(text))


def set_error_in(fields: dict[str, Any], address: str, text: str) -> bool:
    """Show ``text`` under the field that sent ``address``; False if none of ``fields`` did."""
    field = fields.get(address)
    if field is not None:
        field.set_error(text)
    return field is not None


class _Clamping:
    """A spin box that lets a number outside its range be typed, then brings it to the nearest end
    and remembers what was typed (``clamped``), so the field can say so instead of silently
    dropping a digit."""

    clamped: tuple[str, float] | None = None

    def validate(self, text: str, pos: int) -> object:
        state = super().validate(text, pos)  # type: ignore[misc]
        number = _number(text)
        if number is not None and not self.minimum() <= number <= self.maximum():  # type: ignore[attr-defined]
            return QValidator.State.Intermediate, text, pos
        return state

    def fixup(self, text: str) -> str:
        number = _number(text)
        if number is None:
            return super().fixup(text)  # type: ignore[misc]
        used = min(max(number, self.minimum()), self.maximum())  # type: ignore[attr-defined]
        self.clamped = (text.strip(), used)
        return self.textFromValue(used)  # type: ignore[attr-defined]


def _number(text: str) -> float | None:
    try:
        return float(text.strip().replace(",", "."))
    except ValueError:
        return None


class ClampingSpinBox(_Clamping, QSpinBox):
    """An integer field that says when a typed value was out of its range."""


class ClampingDoubleSpinBox(_Clamping, QDoubleSpinBox):
    """A number field that says when a typed value was out of its range."""


class ArgField(QWidget):
    committed = Signal(object)  # the new value, already valid for the protocol

    def __init__(self, address: str, name: str, parent: QWidget | None = None, *,
                 extra: tuple[QWidget, ...] = (), choices: bool = False) -> None:
        super().__init__(parent)
        self.address, self.arg = address, spec(address, name)
        self.editor = self._make_editor(choices)
        self.editor.setToolTip(tooltip(address, self.arg))
        self.error = ErrorLabel(self)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        narrow = not isinstance(self.editor, QLineEdit)  # numbers and choices keep a sensible width
        if narrow:
            self.editor.setMaximumWidth(FIELD_WIDTH)
        row.addWidget(self.editor, 0 if narrow else 1)
        for widget in extra:
            row.addWidget(widget)
        if narrow:
            row.addStretch(1)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(1)
        box.addLayout(row)
        box.addWidget(self.error)
        self._shown: Any = None
        self._note = ""  # what the last edit was told about its range

    # ------------------------------------------------------------------ editor
    def _make_editor(self, choices: bool) -> QWidget:
        arg = self.arg
        if arg.choices or choices:
            combo = QComboBox(self)
            labels = CHOICE_LABELS.get((self.address, arg.name), {})
            for choice in arg.choices:
                combo.addItem(labels.get(choice, str(choice)), choice)
            combo.activated.connect(lambda _i: self._commit())
            return combo
        if arg.type == "i":
            spin = ClampingSpinBox(self)
            spin.setRange(int(arg.min if arg.min is not None else -2**31),
                          int(arg.max if arg.max is not None else 2**31 - 1))
            spin.editingFinished.connect(self._commit)
            return spin
        if arg.type == "f":
            dspin = ClampingDoubleSpinBox(self)
            dspin.setDecimals(decimals(arg))
            dspin.setRange(arg.min if arg.min is not None else -1e9, arg.max if arg.max is not None else 1e9)
            dspin.setSingleStep(0.01 if (arg.max or 10) <= 2 else 1.0)
            dspin.editingFinished.connect(self._commit)
            return dspin
        line = QLineEdit(self)
        line.editingFinished.connect(self._commit)
        return line

    def set_choices(self, values: list[Any]) -> None:
        """Replace a combo's items (the server's model list), keeping the shown value."""
        combo = self.editor
        assert isinstance(combo, QComboBox)
        combo.blockSignals(True)
        combo.clear()
        for v in values:
            combo.addItem(str(v), v)
        combo.blockSignals(False)
        if self._shown is not None:
            self.set_editor(self._shown)

    def value(self) -> Any:
        e = self.editor
        if isinstance(e, QComboBox):
            return e.currentData()
        if isinstance(e, QSpinBox | QDoubleSpinBox):
            return e.value()
        return e.text()

    def set_editor(self, value: Any) -> None:
        e = self.editor
        e.blockSignals(True)
        try:
            if isinstance(e, QComboBox):
                index = e.findData(value)
                if index < 0 and value is not None:  # a value the table does not list (yet)
                    e.addItem(str(value), value)
                    index = e.count() - 1
                e.setCurrentIndex(index)
            elif isinstance(e, QSpinBox):
                e.setValue(int(value))
            elif isinstance(e, QDoubleSpinBox):
                e.setValue(float(value))
            else:
                e.setText("" if value is None else str(value))
        finally:
            e.blockSignals(False)

    # ------------------------------------------------------------------ state
    def show_value(self, value: Any) -> None:
        """The server's value; a field being edited keeps what the user typed."""
        self._shown = value
        if not self.editor.hasFocus() or isinstance(self.editor, QComboBox):
            self.set_editor(value)

    def set_error(self, text: str) -> None:
        """The server's refusal of the last edit, or "" when it took it (a range note stays)."""
        self.error.show_text(text or self._note)

    def _commit(self) -> None:
        clamped = getattr(self.editor, "clamped", None)
        value = self.value()
        if clamped is None and value == self._shown:
            return  # focus left without a change (Qt finishes editing again): the note stays
        self._note = ""
        if clamped is not None:
            self.editor.clamped = None
            typed, used = clamped
            self._note = f"{typed} is outside {self.arg.allowed().split(' in ', 1)[-1]}: {used:g} is used"
        self.error.show_text(self._note)
        if value != self._shown:
            self._shown = value
            self.committed.emit(value)
