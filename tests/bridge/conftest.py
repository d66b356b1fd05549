"""Bridge fixtures: a running server on a free loopback port with the tiny model, and a client."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
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


@contextmanager
def served(cwd: Path, models_dir: Path, *args: str) -> Iterator[tuple[subprocess.Popen, Client]]:
    """``wavestack serve --port P ARGS…`` as a process of its own (once it answers pings), and a client."""
    root = Path(__file__).parents[2]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "WAVESTACK_MODELS": str(models_dir), "PYTHONPATH": str(root)}
    proc = subprocess.Popen([sys.executable, "-m", "bridge.cli", "serve", "--port", str(port), *args],
                            env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = Client(("127.0.0.1", port))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                client.send("/wavestack/ping")
                client.until("/wavestack/pong", timeout=0.2)
                break
            except (TimeoutError, OSError):
                assert time.monotonic() < deadline and proc.poll() is None, "the server did not start"
        yield proc, client
    finally:
        client.close()
        proc.kill()
        proc.wait()
