"""Make docs/ui.png: the control window after a render, driving a server started in this process.

    QT_QPA_PLATFORM=offscreen python docs/make_screenshot.py [--out docs/ui.png] [--model default]

Everything goes over OSC on a loopback port, as with ``wavestack serve`` and ``wavestack-ui``; the
project folder is ``~/Music/Night Drive`` (refused if it exists; removed afterwards), so the picture
shows a folder a user would have.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from bridge.osc.server import Server
from plugin_ui.client import OscClient
from plugin_ui.window import MainWindow


def pump(app: QApplication, until, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise SystemExit("the window did not reach the expected state in time")
        app.processEvents()
        time.sleep(0.01)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(Path(__file__).with_name("ui.png")))
    p.add_argument("--model", default="default")
    args = p.parse_args()
    app = QApplication.instance() or QApplication([])
    project = Path.home() / "Music" / "Night Drive"
    if project.exists():
        raise SystemExit(f"{project} exists; move it away first")
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(port=0, project=str(project))
        try:
            _session(app, server, Path(tmp), args)
        finally:
            server.shutdown()
            shutil.rmtree(project, ignore_errors=True)


def _session(app: QApplication, server: Server, tmp: Path, args: argparse.Namespace) -> None:
    server.start()
    client = OscClient("127.0.0.1", server.address[1])
    window = MainWindow(client, QSettings(str(tmp / "ui.ini"), QSettings.Format.IniFormat))
    window.resize(980, 820)  # the window's default size
    window.show()
    client.start()
    pump(app, lambda: window.state is not None and window.editor.fx.catalog)
    client.send("/tempo", 96)
    for name, at_bar, bars, seed in (("keys", 1, 4, 2018), ("bass", 3, 2, 11), ("pad", 5, 4, 7)):
        client.send("/track/add", name, args.model)
        client.send("/track/at_bar", name, at_bar)
        client.send("/track/bars", name, bars)
        client.send("/track/seed", name, seed)
    client.send("/track/fx", "keys", '[{"plugin": "Reverb", "room_size": 0.6}, {"plugin": "Compressor",'
                ' "threshold_db": -18, "ratio": 3}]')
    pump(app, lambda: window.state is not None and len(window.state["tracks"]) == 3)
    for row, job in ((1, 1), (0, 2)):  # bass, then keys: keys stays selected, with its effects
        window.track_list.setCurrentRow(row)
        window.generate_track()
        pump(app, lambda job=job: window.jobs.state(job) == "done")
    pump(app, lambda: window.takes.count() == 1 and all(
        window.arrangement.span(t)[2] for t in window.arrangement.tracks[:2]))
    window.editor.fx.list.setCurrentRow(0)
    settle = time.monotonic() + 0.5
    pump(app, lambda: time.monotonic() > settle)
    window.grab().save(args.out)
    print(f"wrote {args.out}")
    client.socket.close()


if __name__ == "__main__":
    main()
