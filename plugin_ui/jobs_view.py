"""The render jobs this window started: what, state, a progress bar, and the result or the error."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QHeaderView, QProgressBar, QTreeWidget, QTreeWidgetItem, QWidget

ACTIVE = ("queued", "running")


class JobList(QTreeWidget):
    """One row per job: number, what it renders, its state and a progress bar."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setColumnCount(4)
        self.setHeaderLabels(["job", "render", "state", "progress"])
        self.setRootIsDecorated(False)
        header = self.header()
        header.setStretchLastSection(False)  # the state (with the file or the error) takes the room
        for column, mode in enumerate((QHeaderView.ResizeMode.Fixed, QHeaderView.ResizeMode.Interactive,
                                       QHeaderView.ResizeMode.Stretch, QHeaderView.ResizeMode.Fixed)):
            header.setSectionResizeMode(column, mode)
        self.setColumnWidth(0, 44)
        self.setColumnWidth(1, 90)
        self.setColumnWidth(3, 90)
        self.items: dict[int, QTreeWidgetItem] = {}
        self.bars: dict[int, QProgressBar] = {}
        self.phases: dict[int, str] = {}  # what a running job does besides rendering

    def add(self, job: int, what: str) -> None:
        """A job the server acknowledged; a row of an earlier server with the same number is let go."""
        if job in self.items:  # the server restarted and numbers its jobs from 1 again
            old = self.items.pop(job)
            self.bars.pop(job)
            old.setText(0, f"({job})")
            old.setToolTip(0, "a job of the server before it restarted")
        self.phases.pop(job, None)
        item = QTreeWidgetItem([str(job), what, "queued", ""])
        self.insertTopLevelItem(0, item)
        bar = QProgressBar(self)
        bar.setRange(0, 1000)
        bar.setTextVisible(True)
        self.setItemWidget(item, 3, bar)
        self.items[job], self.bars[job] = item, bar

    def state(self, job: int) -> str:
        return self.items[job].text(2).split(":")[0] if job in self.items else ""

    def progress(self, job: int, fraction: float) -> None:
        if job in self.items and self.state(job) in ACTIVE:
            phase = self.phases.get(job, "")
            self.items[job].setText(2, f"running: {phase}" if phase else "running")
            self.bars[job].setValue(round(fraction * 1000))

    def phase(self, job: int, text: str) -> None:
        """What the job does besides rendering (the first render prepares the fast sampler)."""
        self.phases[job] = text
        if job in self.items and self.state(job) in ACTIVE:
            self.items[job].setText(2, f"running: {text}" if text else "running")
            self.items[job].setToolTip(2, text)

    def done(self, job: int, paths: list[str]) -> None:
        if job in self.items:
            self.bars[job].setValue(1000)
            self.items[job].setText(2, "done: " + ", ".join(Path(p).name for p in paths))
            self.items[job].setToolTip(2, "\n".join(paths))

    def failed(self, job: int, text: str) -> None:
        if job in self.items:
            state = "cancelled" if "cancelled" in text else "failed"
            self.items[job].setText(2, f"{state}: {text}")
            self.items[job].setToolTip(2, text)

    def server_lost(self) -> None:
        """The server went away: its queued and running jobs will not finish."""
        for job in self.active():
            self.items[job].setText(2, "lost: the server stopped")

    def active(self) -> list[int]:
        return [job for job in self.items if self.state(job) in ACTIVE]

    def selected(self) -> int | None:
        item = self.currentItem()
        return int(item.text(0)) if item is not None and item.text(0).isdigit() else None
