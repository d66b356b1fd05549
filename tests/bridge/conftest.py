"""Bridge fixtures: a running server on a free loopback port with the tiny model, and a client."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

from bridge.osc.server import Server


class Client:
    """A python-osc client on its own loopback port."""

    def __init__(self, server_addr: tuple[str, int]) -> None:
        self.server = server_addr
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(10)

    def send(self, address: str, *args: Any) -> None:
        builder = OscMessageBuilder(address=address)
        for arg in args:
            builder.add_arg(arg)
        self.sock.sendto(builder.build().dgram, self.server)

    def raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.server)

    def recv(self, timeout: float = 10.0) -> tuple[str, list[Any]]:
        self.sock.settimeout(timeout)
        data, _ = self.sock.recvfrom(65536)
        message = OscPacket(data).messages[0].message
        return message.address, list(message.params)

    def until(self, *addresses: str, timeout: float = 30.0) -> tuple[str, list[Any]]:
        """Skip replies until one of ``addresses`` arrives."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            address, params = self.recv(max(0.01, deadline - time.monotonic()))
            if address in addresses:
                return address, params
        raise TimeoutError(f"none of {addresses} within {timeout} s")

    def ask(self, address: str, *args: Any) -> tuple[str, list[Any]]:
        self.send(address, *args)
        return self.recv()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def client(server: Server) -> Iterator[Client]:
    c = Client(server.address)
    yield c
    c.close()
