"""The window's only link to the engine: OSC over UDP to ``wavestack serve``.

``OscClient`` sends messages checked against ``bridge.protocol`` (so a bad value is refused before
it leaves), subscribes its own port, pings every second and reports the connection state: it is
connected while pongs come back, disconnected after ``timeout`` seconds without one, and it
subscribes again by itself when the server returns.
"""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtNetwork import QHostAddress, QUdpSocket
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

from bridge.protocol import BY_PATH, PREFIX

START_HINT = "no wavestack server answers on {host}:{port}; start one with: wavestack serve --port {port}"


class OscClient(QObject):
    replied = Signal(str, list)  # address, arguments of every reply from the server
    connection_changed = Signal(bool, str)  # connected?, a line for the status bar

    def __init__(self, host: str = "127.0.0.1", port: int = 9000, *, interval: float = 1.0,
                 timeout: float = 2.5, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.host, self.port, self.timeout = host, port, timeout
        self.connected: bool | None = None  # None until the first pong or the first timeout
        self._last_heard = 0.0
        self.socket = QUdpSocket(self)
        self.socket.bind(QHostAddress(QHostAddress.SpecialAddress.LocalHost), 0)
        self.socket.readyRead.connect(self._read)
        self._timer = QTimer(self)
        self._timer.setInterval(int(interval * 1000))
        self._timer.timeout.connect(self._heartbeat)

    @property
    def local_port(self) -> int:
        return self.socket.localPort()

    def start(self) -> None:
        self._last_heard = time.monotonic()
        self.connection_changed.emit(False, f"connecting to {self.host}:{self.port} …")
        self._heartbeat()
        self._timer.start()

    def send(self, address: str, *args: Any) -> None:
        """Send a protocol message; raises ``bridge.protocol.ProtocolError`` for a bad one."""
        spec = BY_PATH.get(address) or BY_PATH.get(PREFIX + address)
        if spec is None:
            raise KeyError(f"{address} is not in the wavestack protocol")
        values = spec.parse(list(args))  # same checks as the server
        builder = OscMessageBuilder(address=spec.full)
        for arg in spec.args:
            value = values[arg.name]
            builder.add_arg(value, arg_type=arg.type)
        dgram = builder.build().dgram
        self.socket.writeDatagram(dgram, QHostAddress(self.host), self.port)

    def _heartbeat(self) -> None:
        if self.connected is not False and time.monotonic() - self._last_heard > self.timeout:
            self._set(False, START_HINT.format(host=self.host, port=self.port))
        self.send("/ping")

    def _read(self) -> None:
        while self.socket.hasPendingDatagrams():
            datagram = self.socket.receiveDatagram()
            try:
                messages = [m.message for m in OscPacket(bytes(datagram.data())).messages]
            except Exception:  # not ours to crash on: ignore what we cannot parse
                continue
            for message in messages:
                self._last_heard = time.monotonic()
                if message.address == PREFIX + "/pong" and not self.connected:
                    self.send("/subscribe", self.local_port)
                    self._set(True, f"connected to wavestack {message.params[0]} on {self.host}:{self.port}")
                self.replied.emit(message.address, list(message.params))

    def _set(self, connected: bool, text: str) -> None:
        self.connected = connected
        self.connection_changed.emit(connected, text)
