"""The arrangement: every track of the session on a bar/beat ruler, as a DAW shows its clips.

A track is a block from where it starts to where it ends, in the session's tempo and meter: its
latest take where it has one (solid), else where its next take will land (outlined). The followed
DAW's playhead is a line. Clicking a block selects its track.
"""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from bridge.protocol import seconds_per_bar

RULER = 18  # px: bar numbers and beat ticks
ROW = 18  # px per track
NAMES = 90  # px: track names left of the bars
MIN_BARS = 8


class ArrangementView(QWidget):
    """Tracks as blocks on a bar ruler; ``track_clicked`` says which block was clicked."""

    track_clicked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tracks: list[dict[str, Any]] = []
        self.takes: dict[str, list[dict[str, Any]]] = {}
        self.tempo, self.meter = 120.0, (4, 4)
        self.selected = ""
        self.playhead: float | None = None  # seconds, when a followed DAW reports one
        self._bars: int | None = None  # bars shown, worked out again when tracks or takes change
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setToolTip("the session's tracks at their bars: solid where a take exists, outlined where "
                        "the next one will go; click a track to select it")

    # ------------------------------------------------------------------ data
    def show_state(self, state: dict[str, Any]) -> None:
        self.tracks = list(state["tracks"])
        self.tempo, self.meter = float(state["tempo"]), (int(state["meter"][0]), int(state["meter"][1]))
        self._bars = None
        self.updateGeometry()
        self.update()

    def show_takes(self, track: str, takes: list[dict[str, Any]]) -> None:
        if self.takes.get(track) != takes:
            self.takes[track] = takes
            self._bars = None
            self.update()

    def show_selected(self, name: str) -> None:
        if name != self.selected:
            self.selected = name
            self.update()

    def show_playhead(self, seconds: float | None) -> None:
        if seconds != self.playhead:
            self.playhead = seconds
            self.update()

    # ------------------------------------------------------------------ geometry
    def bar_seconds(self) -> float:
        return seconds_per_bar(self.tempo, self.meter)

    def span(self, track: dict[str, Any]) -> tuple[float, float, bool]:
        """(start, length) in seconds of a track's block, and whether it is a take."""
        takes = self.takes.get(track["name"]) or []
        if takes:
            latest = max(takes, key=lambda t: t["take"])
            return float(latest["position_seconds"]), float(latest["seconds"]), True
        bar = self.bar_seconds()
        start = (track["at_bar"] - 1) * bar if track.get("at_bar") is not None else float(track["position"])
        length = track["bars"] * bar if track.get("bars") is not None else float(track["seconds"])
        return start, length, False

    def bars_shown(self) -> int:
        """Bars on the ruler: one past the last block's end, at least MIN_BARS."""
        if self._bars is None:
            ends = [sum(self.span(t)[:2]) / self.bar_seconds() for t in self.tracks]
            self._bars = max(MIN_BARS, math.ceil(max(ends, default=0.0)) + 1)
        return self._bars

    def bar_x(self, bar: float) -> float:
        """x of the start of ``bar`` (1-based; fractions in between)."""
        width = max(1.0, self.width() - NAMES - 4)
        return NAMES + (bar - 1) * width / self.bars_shown()

    def block_rect(self, name: str) -> QRectF:
        """Where track ``name``'s block is drawn (empty if there is no such track)."""
        for row, track in enumerate(self.tracks):
            if track["name"] == name:
                start, length, _ = self.span(track)
                bar = self.bar_seconds()
                left, right = self.bar_x(1 + start / bar), self.bar_x(1 + (start + length) / bar)
                return QRectF(left, RULER + row * ROW + 2, max(2.0, right - left), ROW - 4)
        return QRectF()

    def sizeHint(self) -> QSize:
        return QSize(600, RULER + ROW * max(3, len(self.tracks)) + 4)

    def minimumSizeHint(self) -> QSize:
        return QSize(NAMES + 160, RULER + ROW * 2)

    # ------------------------------------------------------------------ drawing
    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#14202a"))
        font = QFont(self.font())
        font.setPointSizeF(max(7.0, font.pointSizeF() - 1))
        painter.setFont(font)
        bars, beats = self.bars_shown(), self.meter[0]
        step = max(1, math.ceil(bars / max(1, (self.width() - NAMES) // 40)))  # room for the numbers
        for bar in range(1, bars + 2):
            x = self.bar_x(bar)
            painter.setPen(QPen(QColor("#3b4d5c"), 1))
            painter.drawLine(QPointF(x, RULER - 6), QPointF(x, self.height()))
            if (bar - 1) % step == 0 and bar <= bars:
                painter.setPen(QColor("#9fb3c2"))
                painter.drawText(QPointF(x + 3, RULER - 6), str(bar))
            if bar <= bars:
                painter.setPen(QPen(QColor("#26343f"), 1))
                for beat in range(1, beats):
                    bx = self.bar_x(bar + beat / beats)
                    painter.drawLine(QPointF(bx, RULER - 3), QPointF(bx, self.height()))
        for row, track in enumerate(self.tracks):
            y = RULER + row * ROW
            chosen = track["name"] == self.selected
            painter.setPen(QColor("#e8f1f5" if chosen else "#9fb3c2"))
            painter.drawText(QRectF(4, y, NAMES - 8, ROW), Qt.AlignmentFlag.AlignVCenter,
                             painter.fontMetrics().elidedText(track["name"], Qt.TextElideMode.ElideRight,
                                                              NAMES - 8))
            rect = self.block_rect(track["name"])
            _, _, rendered = self.span(track)
            colour = QColor("#5fd3bc" if chosen else "#3f9c8b")
            painter.setPen(QPen(colour.lighter(130) if chosen else colour, 2 if chosen else 1,
                                Qt.PenStyle.SolidLine if rendered else Qt.PenStyle.DashLine))
            painter.setBrush(colour if rendered else Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(rect, 3, 3)
        if self.playhead is not None and self.playhead >= 0:
            x = self.bar_x(1 + self.playhead / self.bar_seconds())
            painter.setPen(QPen(QColor("#ff7a59"), 2))
            painter.drawLine(QPointF(x, 0), QPointF(x, self.height()))
        painter.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        row = math.floor((event.position().y() - RULER) / ROW)
        if 0 <= row < len(self.tracks):  # a block, or anywhere on its track's row
            self.track_clicked.emit(self.tracks[row]["name"])
            return
        super().mousePressEvent(event)
