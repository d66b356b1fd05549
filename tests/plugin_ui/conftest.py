"""Qt offscreen fixtures: one QApplication, a pump that runs the event loop until a condition holds,
and a window connected to a real server on a loopback port with the tiny model."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from bridge.osc.server import Server
from plugin_ui.client import OscClient
from plugin_ui.window import MainWindow


@pytest.fixture(scope="session")
def app() -> QApplication:
    return QApplication.instance() or QApplication([])


@pytest.fixture
def pump(app: QApplication) -> Callable[..., bool]:
    def run(until: Callable[[], object], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            app.processEvents()
            if until():
                return True
            time.sleep(0.005)
        return False

    return run


@pytest.fixture
def settings(tmp_path: Path) -> QSettings:
    return QSettings(str(tmp_path / "ui.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def open_window(app, pump, settings) -> Iterator[Callable[[Server], MainWindow]]:
    windows: list[MainWindow] = []

    def make(server: Server) -> MainWindow:
        client = OscClient("127.0.0.1", server.address[1], interval=0.1, timeout=0.5)
        window = MainWindow(client, settings)
        window.show()
        client.start()
        windows.append(window)
        assert pump(lambda: window.state is not None and window.models and window.editor.fx.catalog)
        return window

    yield make
    for w in windows:
        w.client._timer.stop()
        w.close()
