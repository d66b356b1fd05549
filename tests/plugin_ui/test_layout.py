"""The window's layout holds at the default size (980×820) and maximised (1600×1000): no control is
cut by its parent or squeezed below its minimum, each page of the track editor fits without
scrolling, the jobs list shows every column, number fields keep a sensible width. Screenshots of
both sizes are written next to the test's files (look at them: WAVESTACK_SCREENSHOTS=DIR keeps them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtWidgets import QAbstractScrollArea, QAbstractSpinBox, QComboBox, QScrollArea, QWidget

from plugin_ui.fields import FIELD_WIDTH

from .test_window import window_with_takes


def clipped(window: QWidget) -> list[str]:
    """Visible widgets outside their parent or smaller than they can be drawn."""
    bad = []
    for w in window.findChildren(QWidget):
        parent = w.parentWidget()
        if not w.isVisibleTo(window) or parent is None or w.isWindow() or w.objectName().startswith("qt_"):
            continue  # (Qt's own parts of a control: a spin box's line edit, a scroll bar's container)
        if isinstance(parent, QAbstractScrollArea) or isinstance(parent.parentWidget(), QAbstractScrollArea):
            continue  # a scroll area lays out its own parts; its content may be larger than what shows
        least = w.minimumSizeHint().boundedTo(w.maximumSize())
        name = f"{type(w).__name__} {w.objectName() or w.toolTip()[:40]!r} in {type(parent).__name__}"
        if not parent.rect().contains(w.geometry()):
            bad.append(f"{name}: {w.geometry().getRect()} outside {parent.rect().getRect()}")
        elif w.width() < least.width() or w.height() < least.height():
            bad.append(f"{name}: {w.size().toTuple()} below its minimum {least.toTuple()}")
    return bad


@pytest.mark.parametrize("size", [(980, 820), (1600, 1000)])
def test_nothing_is_clipped_or_squeezed(server, open_window, pump, tmp_path, size):
    window = window_with_takes(server, open_window, pump, takes=2)
    window.editor.fx.add_step({"plugin": "Reverb"})  # the effect with the most parameters
    assert pump(lambda: window.editor.fx.list.count() == 1 and window.editor.fx.params_form.rowCount() == 6)
    window.resize(*size)
    pump(lambda: window.size().toTuple() == size)
    pump(lambda: False, timeout=0.3)  # let the layouts settle
    shots = Path(os.environ.get("WAVESTACK_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)

    tabs = window.editor.tabs
    scroll = next(s for s in window.findChildren(QScrollArea) if s.widget() is window.editor)
    for page in range(tabs.count()):
        tabs.setCurrentIndex(page)
        pump(lambda: False, timeout=0.1)
        window.grab().save(str(shots / f"window-{size[0]}x{size[1]}-{page}.png"))
        assert clipped(window) == [], f"page {tabs.tabText(page)}"
        assert scroll.verticalScrollBar().maximum() == 0, f"page {tabs.tabText(page)} needs scrolling"

    for field in window.findChildren(QAbstractSpinBox) + window.findChildren(QComboBox):
        if field.isVisibleTo(window):
            assert field.width() <= FIELD_WIDTH, f"{field.toolTip()[:40]!r} is {field.width()} px wide"
    jobs = window.jobs
    header = jobs.header()
    last = header.logicalIndex(header.count() - 1)
    assert header.sectionViewportPosition(last) + header.sectionSize(last) <= jobs.viewport().width()
    assert not jobs.horizontalScrollBar().isVisible()
