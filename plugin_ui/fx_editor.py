"""A list editor for an effects chain: built-in pedalboard effects from the server's catalog (with
their parameters, defaults and ranges) and VST3 plugins picked by file.

The editor holds the chain as the protocol's JSON data (see ``bridge.fx``) and emits ``changed``
with the whole chain after every edit; the server checks it and answers ack or error.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .fields import ErrorLabel

Step = dict[str, Any]


def describe(step: Step) -> str:
    if "vst3" in step:
        params = step.get("params") or {}
        return f"VST3 {Path(step['vst3']).stem}" + (f" ({len(params)} set)" if params else "")
    settings = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                         for k, v in step.items() if k != "plugin")
    return step.get("plugin", "?") + (f" ({settings})" if settings else "")


class FxEditor(QWidget):
    changed = Signal(list)  # the whole chain after an edit

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.catalog: dict[str, dict[str, dict[str, Any]]] = {}
        self.steps: list[Step] = []
        self.list = QListWidget(self)
        self.list.setMaximumHeight(90)
        self.list.setToolTip("effects in processing order; select one to edit its parameters")
        self.list.currentRowChanged.connect(self._show_params)
        self.plugins = QComboBox(self)
        self.plugins.setToolTip("built-in pedalboard effects")
        add = QPushButton("Add", self, clicked=lambda: self.add_step({"plugin": self.plugins.currentText()}))
        vst = QPushButton("VST3…", self, clicked=self._pick_vst3)
        vst.setToolTip("add a VST3 plugin from a .vst3 bundle")
        self.remove = QPushButton("Remove", self, clicked=self.remove_selected)
        self.up = QPushButton("↑", self, clicked=lambda: self.move_selected(-1))
        self.down = QPushButton("↓", self, clicked=lambda: self.move_selected(1))
        for b in (self.up, self.down):
            b.setMaximumWidth(28)
        buttons = QHBoxLayout()
        for w in (self.plugins, add, vst, self.remove, self.up, self.down):
            buttons.addWidget(w)
        self.params = QWidget(self)
        self.params_form = QFormLayout(self.params)
        self.params_form.setContentsMargins(12, 0, 0, 0)
        self.error = ErrorLabel(self)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.list)
        box.addLayout(buttons)
        box.addWidget(self.params)
        box.addWidget(self.error)

    # ------------------------------------------------------------------ from the server
    def set_catalog(self, catalog: dict[str, dict[str, dict[str, Any]]]) -> None:
        self.catalog = catalog
        current = self.plugins.currentText()
        self.plugins.clear()
        self.plugins.addItems(sorted(catalog))
        self.plugins.setCurrentText(current or "Reverb")
        self._show_params(self.list.currentRow())

    def show_chain(self, steps: list[Step]) -> None:
        if steps == self.steps:
            return
        row = self.list.currentRow()
        self.steps = copy.deepcopy(steps)
        self.list.blockSignals(True)
        self.list.clear()
        self.list.addItems([describe(s) for s in self.steps])
        self.list.blockSignals(False)
        self.list.setCurrentRow(min(row, len(self.steps) - 1))
        self._show_params(self.list.currentRow())

    def set_error(self, text: str) -> None:
        self.error.show_text(text)

    # ------------------------------------------------------------------ edits
    def add_step(self, step: Step) -> None:
        self._emit([*self.steps, step], select=len(self.steps))

    def remove_selected(self) -> None:
        row = self.list.currentRow()
        if 0 <= row < len(self.steps):
            self._emit(self.steps[:row] + self.steps[row + 1:], select=min(row, len(self.steps) - 2))

    def move_selected(self, delta: int) -> None:
        row, steps = self.list.currentRow(), list(self.steps)
        if 0 <= row < len(steps) and 0 <= row + delta < len(steps):
            steps[row], steps[row + delta] = steps[row + delta], steps[row]
            self._emit(steps, select=row + delta)

    def set_param(self, row: int, key: str, value: Any) -> None:
        steps = copy.deepcopy(self.steps)
        if "vst3" in steps[row]:
            steps[row]["params"] = value
        else:
            steps[row][key] = value
        if steps != self.steps:
            self._emit(steps, select=row)

    def _emit(self, steps: list[Step], select: int) -> None:
        self.show_chain(steps)
        self.list.setCurrentRow(select)
        self.changed.emit(copy.deepcopy(steps))

    def _pick_vst3(self) -> None:
        start = "/usr/lib/vst3" if Path("/usr/lib/vst3").is_dir() else str(Path.home())
        path = QFileDialog.getExistingDirectory(self, "VST3 plugin (.vst3 bundle)", start)
        if path:
            self.add_step({"vst3": path, "params": {}})

    # ------------------------------------------------------------------ parameters of the selected step
    def _show_params(self, row: int) -> None:
        while self.params_form.rowCount():
            self.params_form.removeRow(0)
        if not 0 <= row < len(self.steps):
            return
        step = self.steps[row]
        if "vst3" in step:
            line = QLineEdit(json.dumps(step.get("params") or {}), self.params)
            line.setToolTip('parameters by the names the plugin lists, as JSON: {"time_ms": 250}')
            line.editingFinished.connect(lambda: self._vst3_params(row, line.text()))
            self.params_form.addRow("params", line)
            return
        for key, p in self.catalog.get(step.get("plugin", ""), {}).items():
            value = step.get(key, p["default"])
            if isinstance(p["default"], bool):
                box = QCheckBox(self.params)
                box.setChecked(bool(value))
                box.toggled.connect(lambda on, k=key: self.set_param(row, k, on))
                self.params_form.addRow(key, box)
                continue
            spin = QDoubleSpinBox(self.params)
            spin.setRange(p["min"], p["max"])
            spin.setDecimals(3)
            spin.setSingleStep((p["max"] - p["min"]) / 100)
            spin.setValue(float(value))
            spin.setToolTip(f"{key}: default {p['default']:g}, range [{p['min']:g}, {p['max']:g}]")
            spin.editingFinished.connect(lambda k=key, s=spin: self.set_param(row, k, round(s.value(), 6)))
            self.params_form.addRow(key, spin)

    def _vst3_params(self, row: int, text: str) -> None:
        try:
            params = json.loads(text or "{}")
            if not isinstance(params, dict):
                raise ValueError("give a JSON object of parameter names to values")
        except ValueError as exc:
            self.set_error(f"VST3 parameters: {exc}")
            return
        self.set_param(row, "params", params)
