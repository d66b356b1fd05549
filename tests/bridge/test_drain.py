"""The receiving process: datagrams leave the kernel's buffer while the server is busy, it ends
with the server, and the server lives on (receiving itself) if it is killed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bridge.osc import server as server_module
from bridge.osc.server import Server
from bridge.osc.wire import encode

from .conftest import Client
from .test_follow import until

PING = encode("/wavestack/ping", [])


@pytest.fixture
def busy_server(monkeypatch):
    """A server with a small receive buffer whose first datagram keeps it busy, holding the
    interpreter, for 2 s."""
    monkeypatch.setattr(server_module, "RECEIVE_BUFFER", 256 << 10)
    server = Server(port=0)
    handle, first = server.handle, []

    def busy_first(data, addr):
        if not first:
            first.append(True)
            start = time.monotonic()
            while time.monotonic() - start < 2.0:
                pass
        handle(data, addr)

    server.handle = busy_first
    server.start()
    yield server
    server.shutdown()


def test_a_burst_while_the_server_is_busy_is_received_whole(busy_server):
    # 4,000 pings paced at under 10,000 a second from another process, all sent while the server
    # is busy: a receive thread in the busy server would get the interpreter every 5 ms, and the
    # kernel's buffer (at most 512 KiB: ~600 pings) would drop most of them
    sender = ("import socket, time\n"
              f"s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 0))\n"
              "for i in range(4000):\n"
              f"    s.sendto({PING!r}, ('127.0.0.1', {busy_server.address[1]}))\n"
              "    if i % 10 == 0: time.sleep(0.001)\n")
    subprocess.run([sys.executable, "-c", sender], check=True, timeout=60)
    assert until(lambda: busy_server.stats["received"] >= 4000, timeout=30)
    time.sleep(0.2)
    assert busy_server.stats["received"] == 4000 and busy_server.stats["dropped"] == 0


def test_the_server_sleeps_through_a_burst_and_then_answers_all_of_it(server):
    # 400 pings back to back (fewer than any kernel buffer holds): the handling falls behind at
    # once, so the server sleeps while the receiving process takes them off the socket
    client = Client(server.address)
    sender = ("import socket\n"
              "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 0))\n"
              f"for i in range(400): s.sendto({PING!r}, ('127.0.0.1', {server.address[1]}))\n")
    subprocess.run([sys.executable, "-c", sender], check=True, timeout=60)
    assert until(lambda: server.stats["received"] >= 400, timeout=30)
    assert server.stats["received"] == 400 and server.stats["dropped"] == 0
    assert server.stats["bursts"] >= 1
    # a quiet socket ends the sitting out after one pause, and answers come at once again
    assert server._sit_out_burst(server._drain) == 1
    assert client.ask("/wavestack/ping")[0] == "/wavestack/pong"
    client.close()


def test_the_receiving_process_has_a_core_the_servers_own_threads_keep_off(server):
    # threads woken by its pipe would otherwise often run on its core and keep it waiting
    drain, cores = server._drain, os.sched_getaffinity(0)
    if len(cores) < 2:
        assert drain.core is None
        return
    assert drain.core == max(cores) and os.sched_getaffinity(drain.proc.pid) == {drain.core}

    def kept_off(name: str) -> bool:
        ids = [t.native_id for t in threading.enumerate() if t.name == name and t.is_alive()]
        return bool(ids) and all(drain.core not in os.sched_getaffinity(i) for i in ids)

    assert until(lambda: kept_off("wavestack-osc") and kept_off("wavestack-osc-handle"))
    assert os.sched_getaffinity(0) == cores  # the thread that started the server is left as it was
    client = Client(server.address)
    assert client.ask("/wavestack/ping")[0] == "/wavestack/pong"
    client.close()


def test_the_receiving_process_counts_what_it_takes_off_the_socket(server):
    before = server._drain.received()
    client = Client(server.address)
    for _ in range(5):
        assert client.ask("/wavestack/ping")[0] == "/wavestack/pong"
    assert server._drain.received() == before + 5
    client.close()


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"  # not a zombie
    except OSError:
        return False


def test_the_receiving_process_ends_with_the_server_and_frees_its_port():
    server = Server(port=0)
    server.start()
    pid, port = server._drain.proc.pid, server.address[1]
    assert alive(pid)
    server.shutdown()
    assert not alive(pid)
    again = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    again.bind(("127.0.0.1", port))  # nothing holds it any more
    again.close()


def test_a_killed_receiving_process_leaves_the_server_answering(server):
    client = Client(server.address)
    pid = server._drain.proc.pid
    os.kill(pid, signal.SIGKILL)
    assert until(lambda: server._drain is None)  # the server noticed and receives itself
    address, values = client.ask("/wavestack/ping")
    assert address == "/wavestack/pong" and values
    client.close()


def _system_allows_realtime() -> bool:
    """Whether this process may give another the lowest round-robin realtime priority (asked of
    the kernel with a throwaway child)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        os.sched_setscheduler(child.pid, os.SCHED_RR, os.sched_param(os.sched_get_priority_min(os.SCHED_RR)))
        return True
    except OSError:
        return False
    finally:
        child.kill()
        child.wait()


def test_the_receiving_process_runs_at_realtime_priority_where_allowed(server):
    policy = os.sched_getscheduler(server._drain.proc.pid)
    if _system_allows_realtime():
        assert server._drain.realtime and policy == os.SCHED_RR
    else:
        assert not server._drain.realtime and policy == os.SCHED_OTHER
    # the server's own threads stay at normal priority
    assert os.sched_getscheduler(0) == os.SCHED_OTHER
    client = Client(server.address)
    assert client.ask("/wavestack/ping")[0] == "/wavestack/pong"
    client.close()


def test_what_the_system_drops_while_the_receiving_process_is_held_is_counted_and_said(monkeypatch, caplog):
    monkeypatch.setattr(server_module, "RECEIVE_BUFFER", 64 << 10)
    server = Server(port=0)
    server.start()
    try:
        pid = server._drain.proc.pid
        os.kill(pid, signal.SIGSTOP)  # nothing takes datagrams off the socket: the kernel's buffer fills
        sender = ("import socket\n"
                  "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 0))\n"
                  f"for i in range(3000): s.sendto({PING!r}, ('127.0.0.1', {server.address[1]}))\n")
        subprocess.run([sys.executable, "-c", sender], check=True, timeout=60)
        os.kill(pid, signal.SIGCONT)
        total = lambda: server.stats["received"] + server.stats["dropped_by_system"]  # noqa: E731
        assert until(lambda: total() >= 3000, timeout=30)
        time.sleep(0.6)  # one more look: nothing counted twice
        assert total() == 3000
        assert 0 < server.stats["dropped_by_system"] < 3000 and server.stats["dropped"] == 0
        said = [r.getMessage() for r in caplog.records if "the system dropped" in r.getMessage()]
        assert said and "receive buffer was full" in said[0]
    finally:
        server.shutdown()
