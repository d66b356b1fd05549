"""Entry point of ``wavestack-ui``: the control window of a running ``wavestack serve``."""

from __future__ import annotations

import argparse
import signal
import sys

from bridge.protocol import port


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="wavestack-ui",
        description="The wavestack control window. It talks to a running server over OSC only "
                    "(start one with: wavestack serve), shows its session, edits tracks, renders "
                    "them and lets you drag the rendered takes into your DAW.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address of the server (default 127.0.0.1)")
    p.add_argument("--port", type=port, default=9000, help="UDP port of the server (default 9000)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from PySide6.QtWidgets import QApplication

    from .client import OscClient
    from .window import MainWindow

    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl+C in the terminal closes the window
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("wavestack-ui")
    client = OscClient(args.host, args.port)
    window = MainWindow(client)
    window.show()
    client.start()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
