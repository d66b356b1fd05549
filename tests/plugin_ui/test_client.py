"""The UI's OSC client against a real server on loopback, Qt offscreen."""

from __future__ import annotations

import pytest

from bridge.osc.server import Server
from bridge.protocol import ProtocolError
from plugin_ui.client import OscClient


def test_connects_subscribes_sees_replies_and_reconnects(pump, tmp_path, tiny_model):
    server = Server(port=0, project=str(tmp_path / "p"))
    server.start()
    port = server.address[1]
    client = OscClient("127.0.0.1", port, interval=0.1, timeout=0.4)
    states, replies = [], []
    client.connection_changed.connect(lambda ok, text: states.append((ok, text)))
    client.replied.connect(lambda address, args: replies.append((address, args)))
    client.start()
    assert pump(lambda: client.connected)
    assert "connected to wavestack 0.1.0" in states[-1][1]
    assert pump(lambda: ("127.0.0.1", client.local_port) in server.subscribers)

    client.send("/wavestack/tempo", 0.0 + 100)
    assert pump(lambda: ("/wavestack/ack", ["/wavestack/tempo"]) in replies)
    with pytest.raises(ProtocolError, match=r"must be a number in \[20, 300\], got 0"):
        client.send("/wavestack/tempo", 0)  # refused before it is sent: the table is shared

    server.shutdown()  # the server goes away …
    assert pump(lambda: client.connected is False)
    assert f"start one with: wavestack serve --port {port}" in states[-1][1]

    again = Server(port=port, project=str(tmp_path / "p"))  # … and comes back on the same port
    again.start()
    try:
        assert pump(lambda: client.connected)
        assert pump(lambda: ("127.0.0.1", client.local_port) in again.subscribers)
    finally:
        again.shutdown()


def test_the_ui_never_imports_the_engine_or_torch():
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, plugin_ui.client, plugin_ui.window, plugin_ui.app; "
            "assert not {'torch', 'engine'} & set(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_wavestack_ui_help_explains_itself():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "plugin_ui.app", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "wavestack serve" in out and "--port" in out and "--host" in out
