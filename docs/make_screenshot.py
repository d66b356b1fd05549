"""Make docs/ui.png: the control window after a render, driving a server started in this process.

    QT_QPA_PLATFORM=offscreen python docs/make_screenshot.py [--out docs/ui.png] [--model default]

Everything goes over OSC on a loopback port, as with ``wavestack serve`` and ``wavestack-ui``; the
project folder is a temporary one.
"""

from __future__ import annotations

import argparse
import os
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
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(port=0, project=str(Path(tmp) / "My Song"))
        server.start()
        client = OscClient("127.0.0.1", server.address[1])
        window = MainWindow(client, QSettings(str(Path(tmp) / "ui.ini"), QSettings.Format.IniFormat))
        window.resize(1000, 860)
        window.show()
        client.start()
        pump(app, lambda: window.state is not None and window.editor.fx.catalog)
        for name, seconds, seed in (("bass", 2.0, 11), ("piano", 3.0, 2018)):
            client.send("/track/add", name, args.model)
            client.send("/track/seconds", name, seconds)
            client.send("/track/seed", name, seed)
        client.send("/track/at_bar", "piano", 2)
        client.send("/track/fx", "piano", '[{"plugin": "Reverb", "room_size": 0.6}, {"plugin": "Compressor",'
                    ' "threshold_db": -18, "ratio": 3}]')
        client.send("/tempo", 96)
        pump(app, lambda: window.state is not None and len(window.state["tracks"]) == 2)
        window.track_list.setCurrentRow(1)
        window.generate_track()
        pump(app, lambda: window.jobs.state(1) == "done")
        window.generate_track()
        pump(app, lambda: window.jobs.state(2) == "done" and window.takes.count() == 2)
        window.editor.fx.list.setCurrentRow(0)
        settle = time.monotonic() + 0.5
        pump(app, lambda: time.monotonic() > settle)
        window.grab().save(args.out)
        print(f"wrote {args.out}")
        client.socket.close()
        server.shutdown()


if __name__ == "__main__":
    main()
