"""A track's rendered takes: waveform thumbnails, dragged out as file URLs into a DAW or file
manager, and heard with play/stop (Space) and the previous/next take, a playhead over the waveform.

Takes are never overwritten (each render is a new file), so a thumbnail is drawn once per path.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from PySide6.QtCore import QMimeData, QSize, Qt, QUrl, Signal
from PySide6.QtGui import QAction, QColor, QDesktopServices, QGuiApplication, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .fields import ErrorLabel
from .player import Player

THUMB = QSize(180, 40)
PATH_ROLE = Qt.ItemDataRole.UserRole
SEED_ROLE = Qt.ItemDataRole.UserRole + 1
TAKE_ROLE = Qt.ItemDataRole.UserRole + 2
KEEPER_ROLE = Qt.ItemDataRole.UserRole + 3


def peaks(path: str, columns: int) -> np.ndarray:
    """(columns, 2) min/max of the file's mono downmix, in [-1, 1]."""
    audio, _ = sf.read(path, dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    if mono.size == 0:
        return np.zeros((columns, 2), np.float32)
    edges = np.linspace(0, mono.size, columns + 1).astype(int)
    out = np.zeros((columns, 2), np.float32)
    for i in range(columns):
        chunk = mono[edges[i]:max(edges[i + 1], edges[i] + 1)]
        out[i] = chunk.min(), chunk.max()
    return out


@lru_cache(maxsize=256)
def thumbnail(path: str, width: int = THUMB.width(), height: int = THUMB.height()) -> QPixmap:
    pixmap = QPixmap(width, height)
    pixmap.fill(QColor("#1e2a33"))
    try:
        columns = peaks(path, width)
    except (OSError, RuntimeError, sf.LibsndfileError):  # unreadable: an empty thumbnail, not a crash
        return pixmap
    painter = QPainter(pixmap)
    painter.setPen(QColor("#5fd3bc"))
    middle = height / 2
    for x, (lo, hi) in enumerate(columns):
        painter.drawLine(x, int(middle - hi * middle), x, int(middle - lo * middle))
    painter.end()
    return pixmap


def label(take: dict[str, Any]) -> str:
    star = "★ " if take.get("keeper") else ""
    return (f"{star}take {take['take']} · seed {take['seed']} · {take['seconds']:.1f} s"
            f" at {take['position_seconds']:g} s"
            f"\n{Path(take['path']).name}")


class TakeList(QListWidget):
    """A track's takes; ``use`` asks for an edit of the track from a take: (OSC address, args)."""

    use = Signal(str, list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setIconSize(THUMB)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setDefaultDropAction(Qt.DropAction.CopyAction)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setToolTip("drag a take into the DAW or a file manager; right-click to continue from it, "
                        "make variations of it, render again with its seed, keep or delete it, reveal "
                        "or copy its path")
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self.primer_action = QAction("Continue from this take (use as primer)", self,
                                     triggered=lambda: self._use("/track/primer"))
        self.vary_action = QAction("Make variations of this take (use as source)", self,
                                   triggered=lambda: self._use("/track/vary"))
        self.seed_action = QAction("Render again with this take's seed (lock it)", self,
                                   triggered=lambda: self._use("/track/seed"))
        self.keep_action = QAction("Keep this take (★; a keeper cannot be deleted)", self,
                                   triggered=self._toggle_keeper)
        self.delete_action = QAction("Delete this take (moved to Audio/.trash)", self,
                                     triggered=lambda: self._use("/take/delete"))
        self.reveal_action = QAction("Reveal in folder", self, triggered=self.reveal)
        self.copy_action = QAction("Copy path", self, triggered=self.copy_path)
        self.addActions([self.primer_action, self.vary_action, self.seed_action, self.keep_action,
                         self.delete_action, self.reveal_action, self.copy_action])

    def show_takes(self, takes: list[dict[str, Any]]) -> None:
        if takes == getattr(self, "_takes", None):
            return
        self._takes = takes
        current = self.currentItem().data(PATH_ROLE) if self.currentItem() is not None else None
        self.clear()
        for take in takes:
            item = QListWidgetItem(QIcon(thumbnail(take["path"])), label(take))
            item.setData(PATH_ROLE, take["path"])
            item.setData(SEED_ROLE, take["seed"])
            item.setData(TAKE_ROLE, take["take"])
            item.setData(KEEPER_ROLE, bool(take.get("keeper")))
            item.setToolTip(take["path"])
            self.addItem(item)
            if take["path"] == current:  # the take the user chose stays chosen when the list is redrawn
                self.setCurrentItem(item)

    def show_playhead(self, path: str, fraction: float | None) -> None:
        """A line at ``fraction`` of the take's waveform (None: the plain waveform)."""
        for i in range(self.count()):
            item = self.item(i)
            if item.data(PATH_ROLE) != path:
                continue
            pixmap = QPixmap(thumbnail(path))
            if fraction is not None:
                painter = QPainter(pixmap)
                painter.setPen(QColor("#ffd166"))
                x = int(min(max(fraction, 0.0), 1.0) * (pixmap.width() - 1))
                painter.drawLine(x, 0, x, pixmap.height())
                painter.end()
            item.setIcon(QIcon(pixmap))

    def step(self, offset: int) -> str | None:
        """Select the take ``offset`` rows from the current one (the first if none); its path."""
        if self.count() == 0:
            return None
        row = 0 if self.currentRow() < 0 else min(max(self.currentRow() + offset, 0), self.count() - 1)
        self.setCurrentRow(row)
        return self.item(row).data(PATH_ROLE)

    def paths(self, items: list[QListWidgetItem] | None = None) -> list[str]:
        items = self.selectedItems() if items is None else items
        return [item.data(PATH_ROLE) for item in items]

    # ------------------------------------------------------------------ drag out
    def mimeTypes(self) -> list[str]:
        return ["text/uri-list", "text/plain"]

    def mimeData(self, items: list[QListWidgetItem]) -> QMimeData:
        data = QMimeData()
        paths = self.paths(items)
        data.setUrls([QUrl.fromLocalFile(p) for p in paths])
        data.setText("\n".join(paths))
        return data

    def supportedDropActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction

    # ------------------------------------------------------------------ actions
    def reveal(self) -> None:
        """Open the folders of the selected takes in the file manager."""
        for folder in {str(Path(p).parent) for p in self.paths()}:
            QDesktopServices.openUrl(QUrl.fromLocalFile(folder))

    def copy_path(self) -> None:
        """Put the selected takes' paths on the clipboard."""
        QGuiApplication.clipboard().setText("\n".join(self.paths()))

    def _use(self, address: str) -> None:
        item = self.currentItem()
        if item is None:
            return
        if address == "/track/seed":
            self.use.emit(address, [int(item.data(SEED_ROLE))])
        elif address == "/take/delete":
            self.use.emit(address, [int(item.data(TAKE_ROLE))])
        else:
            self.use.emit(address, [item.data(PATH_ROLE)])

    def _toggle_keeper(self) -> None:
        item = self.currentItem()
        if item is not None:
            self.use.emit("/take/keep", [int(item.data(TAKE_ROLE)), 0 if item.data(KEEPER_ROLE) else 1])


class TakeTransport(QWidget):
    """Play/stop the selected take and step to the previous or next one, under a ``TakeList``."""

    def __init__(self, takes: TakeList, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.takes, self.player = takes, Player(self)
        self.play_button = QPushButton("Play  (Space)", self, clicked=self.toggle)
        self.play_button.setToolTip("hear the selected take (Space); again to stop")
        self.previous_button = QPushButton("◀ Previous take", self, clicked=lambda: self.audition(-1))
        self.next_button = QPushButton("Next take ▶", self, clicked=lambda: self.audition(1))
        self.message = ErrorLabel(self)
        buttons = QHBoxLayout()
        for button in (self.previous_button, self.play_button, self.next_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(buttons)
        layout.addWidget(self.message)
        self.player.position.connect(self._moved)
        self.player.stopped.connect(self._stopped)
        self.player.failed.connect(self.message.show_text)
        takes.itemDoubleClicked.connect(lambda item: self._play(item.data(PATH_ROLE)))

    def toggle(self) -> None:
        """Stop what plays, else play the selected take (the first, if none is selected)."""
        if self.player.playing:
            self.player.stop()
            return
        path = self.takes.currentItem().data(PATH_ROLE) if self.takes.currentItem() else self.takes.step(0)
        if path is None:
            self.message.show_text("no take to play yet: generate one first")
            return
        self._play(path)

    def audition(self, offset: int) -> None:
        """Play the take before (−1) or after (+1) the selected one."""
        path = self.takes.step(offset)
        if path is not None:
            self._play(path)

    def _play(self, path: str) -> None:
        if self.player.play(path):
            self.message.show_text("")
            self.play_button.setText("Stop  (Space)")

    def _moved(self, path: str, seconds: float) -> None:
        self.takes.show_playhead(path, seconds / max(self.player.duration(), 1e-9))

    def _stopped(self, path: str) -> None:
        self.takes.show_playhead(path, None)
        self.play_button.setText("Play  (Space)")
