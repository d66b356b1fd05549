"""A list editor for an effects chain: built-in pedalboard effects from the server's catalog (with
their parameters, defaults and ranges) and VST3 plugins picked by file; any step can be bypassed.

Parameters read as a musician expects: amounts of 0–1 (mix, room size, damping, levels) in %, a
0/1 mode as a switch, units (dB, ms, Hz, s, semitones) as suffixes and not in the name; the
protocol's names and raw values stay in the tooltips.

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
UNITS = (("_db", "dB"), ("_ms", "ms"), ("_hz", "Hz"), ("_seconds", "s"), ("semitones", "semitones"))
FIELD_WIDTH = 200


def label(key: str) -> str:
    """A parameter's name without its unit, in words: threshold_db → threshold, freeze_mode → freeze."""
    for suffix, _ in UNITS:
        if key.endswith(suffix) and key != suffix.lstrip("_"):
            key = key[: -len(suffix)]
    return key.removesuffix("_mode").replace("_", " ")


def unit(key: str) -> str:
    return next((u for suffix, u in UNITS if key.endswith(suffix)), "")


def is_switch(key: str, p: dict[str, Any]) -> bool:
    """A 0/1 number that means off/on (Reverb's freeze_mode)."""
    return key.endswith("_mode") and (p.get("min"), p.get("max")) == (0.0, 1.0)


def is_amount(key: str, p: dict[str, Any]) -> bool:
    """A fraction (0–1, or −1–1 for feedback) shown in %."""
    return not unit(key) and p.get("max") == 1.0 and p.get("min") in (0.0, -1.0)


def describe(step: Step) -> str:
    off = " — bypassed" if step.get("bypass") else ""
    if "vst3" in step:
        params = step.get("params") or {}
        return f"VST3 {Path(step['vst3']).stem}" + (f" ({len(params)} set)" if params else "") + off
    settings = ", ".join(f"{label(k)} {v:g}" if isinstance(v, float) else f"{label(k)} {v}"
                         for k, v in step.items() if k not in ("plugin", "bypass"))
    return step.get("plugin", "?") + (f" ({settings})" if settings else "") + off


class FxEditor(QWidget):
    changed = Signal(list)  # the whole chain after an edit

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.catalog: dict[str, dict[str, dict[str, Any]]] = {}
        self.steps: list[Step] = []
        self.list = QListWidget(self)
        self.list.setMinimumHeight(60)
        self.list.setToolTip("effects in processing order; select one to edit its parameters")
        self.list.currentRowChanged.connect(self._show_params)
        self.plugins = QComboBox(self)
        self.plugins.setToolTip("built-in pedalboard effects")
        add = QPushButton("Add", self, clicked=lambda: self.add_step({"plugin": self.plugins.currentText()}))
        vst = QPushButton("VST3…", self, clicked=self._pick_vst3)
        vst.setToolTip("add a VST3 plugin from a .vst3 bundle")
        self.remove = QPushButton("Remove", self, clicked=self.remove_selected)
        self.bypass = QCheckBox("bypass", self)
        self.bypass.setToolTip("keep the effect in the chain but do not run it")
        self.bypass.clicked.connect(lambda on: self.set_param(self.list.currentRow(), "bypass", on))
        self.up = QPushButton("↑", self, clicked=lambda: self.move_selected(-1))
        self.down = QPushButton("↓", self, clicked=lambda: self.move_selected(1))
        for b in (self.up, self.down):
            b.setMaximumWidth(28)
        buttons = QHBoxLayout()
        for w in (self.plugins, add, vst, self.remove, self.up, self.down, self.bypass):
            buttons.addWidget(w)
        self.params = QWidget(self)
        self.params_form = QFormLayout(self.params)
        self.params_form.setContentsMargins(12, 0, 0, 0)
        self.params_form.setVerticalSpacing(2)
        self.error = ErrorLabel(self)
        chain_and_params = QHBoxLayout()  # side by side: the page stays short enough for the window
        chain_and_params.addWidget(self.list, 1)
        chain_and_params.addWidget(self.params, 1)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addLayout(buttons)
        box.addLayout(chain_and_params)
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
        if not 0 <= row < len(self.steps):
            return
        steps = copy.deepcopy(self.steps)
        if key == "bypass" and not value:
            steps[row].pop("bypass", None)
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
        valid = 0 <= row < len(self.steps)
        self.bypass.setEnabled(valid)
        self.bypass.setChecked(valid and bool(self.steps[row].get("bypass")))
        if not valid:
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
            tip = f"{key}: default {p['default']}"
            if "min" in p:
                tip += f", range [{p['min']:g}, {p['max']:g}]"
            if isinstance(p["default"], bool) or is_switch(key, p):
                box = QCheckBox("on", self.params)
                box.setChecked(bool(value) and float(value) >= 0.5)
                box.setToolTip(tip)
                kind = bool if isinstance(p["default"], bool) else float
                box.toggled.connect(lambda on, k=key, kind=kind: self.set_param(row, k, kind(on)))
                self.params_form.addRow(label(key), box)
                continue
            scale = 100.0 if is_amount(key, p) else 1.0
            spin = QDoubleSpinBox(self.params)
            spin.setMaximumWidth(FIELD_WIDTH)
            spin.setRange(p["min"] * scale, p["max"] * scale)
            spin.setDecimals(0 if scale == 100 else 2 if p["max"] - p["min"] <= 100 else 1)
            spin.setSingleStep(1.0 if scale == 100 else (p["max"] - p["min"]) / 100)
            spin.setSuffix(" %" if scale == 100 else f" {unit(key)}" if unit(key) else "")
            spin.setValue(float(value) * scale)
            spin.setToolTip(tip)
            spin.editingFinished.connect(
                lambda k=key, s=spin, scale=scale: self.set_param(row, k, round(s.value() / scale, 6)))
            self.params_form.addRow(label(key), spin)

    def _vst3_params(self, row: int, text: str) -> None:
        try:
            params = json.loads(text or "{}")
            if not isinstance(params, dict):
                raise ValueError("give a JSON object of parameter names to values")
        except ValueError as exc:
            self.set_error(f"VST3 parameters: {exc}")
            return
        self.set_param(row, "params", params)
