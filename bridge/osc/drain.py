"""A process that takes the server's datagrams off its socket as fast as they come.

The server's threads share one interpreter lock: while it answers, datagrams wait in the kernel's
receive buffer, which drops what does not fit (about 9,700 small ones in 8 MiB, 480 in a stock
416 KiB). This process, started by the server with a duplicate of its socket, does nothing but
receive: each datagram goes into its own memory at once (bounded like the server's inbox; beyond
that it is dropped and counted) and down a pipe to the server, which reads them in large pieces.
It ends when the server closes the pipe to it or goes away. It imports only the standard library
and runs as a script, so it starts in milliseconds.

It also counts what it has taken off the socket in memory the server maps too (Linux): while
that count grows, a burst is coming in, and the server sleeps rather than take the cores from it.

Frames on the pipe: ``HEADER`` (IPv4 address, port, length) then the datagram; a frame from
address 0.0.0.0 port 0 carries no datagram, its length is how many were dropped since the last.
"""

from __future__ import annotations

import collections
import contextlib
import mmap
import os
import select
import socket
import struct
import subprocess
import sys
from pathlib import Path

HEADER = struct.Struct(">4sHI")
CHUNK = 1 << 20  # bytes moved down the pipe per write, at most
Addr = tuple[str, int]


class Drain:
    """The server's side: starts the process, reads what it received (``read``), stops it."""

    def __init__(self, sock: socket.socket, limit: int, limit_bytes: int) -> None:
        fd = sock.fileno()
        self._count, count_fd = _shared_counter()
        try:
            self.proc = subprocess.Popen([sys.executable, "-I", str(Path(__file__)), str(fd), str(limit),
                                          str(limit_bytes), str(count_fd)],
                                         pass_fds=(fd,) if count_fd < 0 else (fd, count_fd),
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
        finally:
            if count_fd >= 0:
                os.close(count_fd)  # (the mapping stays)
        self._out = self.proc.stdout.fileno()
        self._buffer = bytearray()
        self.realtime = _realtime(self.proc.pid)
        self.core = _own_core(self.proc.pid)

    def received(self) -> int:
        """How many datagrams the process has taken off the socket so far (-1: it cannot say):
        while this grows, a burst is coming in."""
        return -1 if self._count is None else int.from_bytes(self._count[:8], "little")

    def read(self, timeout: float) -> tuple[list[tuple[bytes, Addr]], int] | None:
        """The datagrams received since the last call (waiting up to ``timeout`` for one), and how
        many the process dropped; None once the process has ended."""
        ready, _, _ = select.select([self._out], [], [], timeout)
        if not ready:
            return [], 0
        chunk = os.read(self._out, CHUNK)
        if not chunk:  # the process has ended
            self.proc.stdout.close()
            return None
        self._buffer += chunk
        out, dropped, at, buf = [], 0, 0, self._buffer
        while len(buf) - at >= HEADER.size:
            ip, port, length = HEADER.unpack_from(buf, at)
            if port == 0:
                dropped += length
                at += HEADER.size
                continue
            end = at + HEADER.size + length
            if end > len(buf):
                break
            out.append((bytes(buf[at + HEADER.size:end]), (socket.inet_ntoa(ip), port)))
            at = end
        del buf[:at]
        return out, dropped

    def close(self) -> None:
        """Stop the process (it holds the socket: the port is free once this returns); the
        reader sees the end of the pipe."""
        self.proc.stdin.close()
        try:
            self.proc.wait(2.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _realtime(pid: int) -> bool:
    """Give process ``pid`` the lowest realtime priority (round robin), where the system allows it:
    root, or a user with a realtime limit (``ulimit -r``; Linux audio set-ups grant one to the
    audio group). It then takes its core back from other programs the moment a datagram comes,
    instead of waiting its turn while the kernel's buffer fills. It sleeps in ``select`` between
    datagrams, and the kernel keeps a share of every second for other programs in any case."""
    try:
        os.sched_setscheduler(pid, os.SCHED_RR, os.sched_param(os.sched_get_priority_min(os.SCHED_RR)))
    except (AttributeError, OSError):
        return False
    return True


def _own_core(pid: int) -> int | None:
    """Keep process ``pid`` on one core of those this process may use (the last), where there are
    two or more; the server keeps its receiving and handling threads off it (``keep_off``). A
    thread woken by the process's pipe is otherwise often run on its core, which then waits its
    turn for milliseconds while the kernel's buffer fills. Returns the core (None: not kept)."""
    try:
        cores = os.sched_getaffinity(0)
        if len(cores) < 2:
            return None
        core = max(cores)
        os.sched_setaffinity(pid, {core})
    except (AttributeError, OSError):
        return None
    return core


def keep_off(core: int | None) -> None:
    """Keep the calling thread off ``core`` (the receiving process's; None: anywhere)."""
    if core is None:
        return
    with contextlib.suppress(AttributeError, OSError):
        others = os.sched_getaffinity(0) - {core}
        if others:
            os.sched_setaffinity(0, others)


def _shared_counter() -> tuple[mmap.mmap | None, int]:
    """An 8-byte counter in memory shared with the process (Linux: a memfd it maps too), and the
    file descriptor to pass it; (None, -1) where there is none."""
    try:
        fd = os.memfd_create("wavestack-received")
    except (AttributeError, OSError):
        return None, -1
    os.ftruncate(fd, 8)
    return mmap.mmap(fd, 8), fd


def main(argv: list[str]) -> None:
    """The process: receive on socket ``argv[0]`` into memory, write frames to stdout. One thread
    (no lock to wait for between two datagrams): take all the socket holds, feed the pipe what it
    takes, wait for either."""
    fd, limit, limit_bytes, count_fd = (int(v) for v in argv)
    count = mmap.mmap(count_fd, 8) if count_fd >= 0 else None
    received = 0
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)  # (the server's socket already is: one file, shared)
    out = sys.stdout.fileno()
    os.set_blocking(out, False)
    with contextlib.suppress(AttributeError, OSError):  # Linux: a 1-MiB pipe, fewer waits
        import fcntl

        fcntl.fcntl(out, fcntl.F_SETPIPE_SZ, CHUNK)
    pending: collections.deque[bytes] = collections.deque()
    size = dropped = 0
    while True:
        for _ in range(256):  # then count them and feed the pipe, even while datagrams keep coming
            try:
                data, (host, port) = sock.recvfrom(65535)
            except BlockingIOError:
                break
            received += 1
            if len(pending) >= limit or size + len(data) > limit_bytes:
                dropped += 1
                continue
            pending.append(HEADER.pack(socket.inet_aton(host), port, len(data)) + data)
            size += len(pending[-1])
        if count is not None:
            count[:8] = received.to_bytes(8, "little")
        if dropped and len(pending) < limit:
            pending.append(HEADER.pack(bytes(4), 0, dropped))
            dropped = 0
        while pending:
            parts, n = [], 0
            while pending and n < CHUNK:
                parts.append(pending.popleft())
                n += len(parts[-1])
            chunk = b"".join(parts)
            try:
                written = os.write(out, chunk)
            except BlockingIOError:
                written = 0
            except OSError:  # the server has gone
                os._exit(0)
            size -= written
            if written < len(chunk):
                pending.appendleft(chunk[written:])
                break
        readable, _, _ = select.select([sock, sys.stdin], [out] if pending else [], [])
        if sys.stdin in readable and not os.read(sys.stdin.fileno(), 1):
            os._exit(0)  # the server closed the pipe (or ended)


if __name__ == "__main__":
    main(sys.argv[1:])
