"""`wavestack bench --reliability`: what the server and the renders hold, measured on this machine.

- **burst**: N pings sent back to back by another process (as a client is) to a server on
  loopback; how many it received (its own count), with the receive buffer the system granted it,
  and how many the system dropped before the server could take them (the server's count of the
  kernel's, where the system keeps one).
- **handling**: the CPU time one datagram costs the server (parse, dispatch, reply), no socket
  wait: a ping, and a ``/tempo`` edit (which also goes through the session thread).
- **amplification**: bytes answered per byte asked for the largest answers (``/state/get`` of a
  full session), and what the per-sender query limit lets one client draw.
- **memory**: the peak resident memory of ``wavestack generate`` for renders of several lengths
  and of a continuation of a long primer, each in a fresh process.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

Report = Callable[[str, float, str], None]


def burst(messages: int, report: Report) -> None:
    """Send ``messages`` pings back to back from another process to a fresh server; report how many
    it received."""
    from bridge.osc.server import Server

    server = Server(port=0)
    server.start()
    sender = (
        "import socket, sys\n"
        "from pythonosc.osc_message_builder import OscMessageBuilder\n"
        "ping = OscMessageBuilder(address='/wavestack/ping').build().dgram\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "s.bind(('127.0.0.1', 0))\n"
        f"for _ in range({messages}):\n"
        f"    s.sendto(ping, ('127.0.0.1', {server.address[1]}))\n"
    )
    try:
        subprocess.run([sys.executable, "-c", sender], check=True, timeout=600)
        received = -1
        while received != server.stats["received"]:  # until the server has read all it got
            received = server.stats["received"]
            time.sleep(0.6)  # (longer than the server's look at what the system dropped)
    finally:
        server.shutdown()
    label = f"burst of {messages:,} pings (server buffer {server.receive_buffer // 1024:,} KiB)"
    report(f"{label}: received", 100.0 * received / messages, "%")
    dropped = server.stats["dropped_by_system"]
    report(f"{label}: dropped by the system, as the server counts", dropped, "pings")


def handling(report: Report, n: int = 20000) -> None:
    """CPU time per datagram the server handles: a ping, a /tempo edit (no socket wait)."""
    from bridge.osc import wire
    from bridge.osc.server import Server

    server = Server(port=0)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))  # replies go here, never read
    try:
        for label, data in (("ping", wire.encode("/wavestack/ping", [])),
                            ("/tempo edit", wire.encode("/wavestack/tempo", [120.0]))):
            start = time.process_time()
            for _ in range(n):
                server.handle(data, sink.getsockname())
            server.settle()
            cpu = time.process_time() - start
            report(f"handling one {label} (parse, dispatch, reply): CPU", 1e6 * cpu / n, "us")
    finally:
        sink.close()
        server.shutdown()


def amplification(report: Report) -> None:
    """Grow a session until its state fills a datagram; report bytes answered per byte asked."""
    from pythonosc.osc_message_builder import OscMessageBuilder

    from bridge.osc.dispatch import QUERY_BURST, QUERY_RATE
    from bridge.osc.server import Server

    server = Server(port=0)
    server.start()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.settimeout(10.0)

    def ask(address: str, *args: object) -> int:
        builder = OscMessageBuilder(address=address)
        for arg in args:
            builder.add_arg(arg)
        client.sendto(builder.build().dgram, server.address)
        return len(client.recvfrom(65536)[0])

    request = OscMessageBuilder(address="/wavestack/state/get").build().dgram
    tracks, largest = 0, 0
    try:
        while tracks < 128:  # tracks until the state no longer fits one datagram (its error is small)
            ask("/wavestack/track/add", f"track-{tracks + 1:03d}-with-a-long-descriptive-name")
            size = ask("/wavestack/state/get")
            if size <= largest:
                break
            tracks, largest = tracks + 1, size
    finally:
        client.close()
        server.shutdown()
    report(f"/state/get of {tracks} tracks: bytes answered per byte asked", largest / len(request), "x")
    report(f"one sender at most: {QUERY_BURST} such answers at once, then", QUERY_RATE * largest / 1e6,
           "MB/s")


def memory(model: str, lengths: list[float], primer_seconds: float, report: Report) -> None:
    """Peak memory of rendering a stem of each length (as the server does, at 48 kHz), and of
    continuing a primer, each in a fresh process; for each stem, the render's own part (the growth
    over the loaded model) next to the estimate it is checked with before it starts."""
    from bridge.render.memory import render_bytes
    from engine.catalog import read_manifest, resolve

    config = read_manifest(resolve(model))["config"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (str(Path(__file__).parents[2]),
                                                                    os.environ.get("PYTHONPATH")))))
    for seconds in lengths:
        (loaded, peak), wall = high_water_marks(STEM, [model, str(seconds)], env)
        report(f"render a {seconds:g}-s stem: peak memory of the process ({wall:.0f} s)", peak, "MB")
        report("  of which the render's own (growth over the loaded model)", peak - loaded, "MB")
        report("  the estimate it is checked with before it starts",
               render_bytes(config, seconds, 48000) / 2**20, "MB")
    if primer_seconds > 0:
        (_, peak), wall = high_water_marks(PRIMED, [model, str(primer_seconds)], env)
        report(f"continue a {primer_seconds:g}-s primer by 1 s: peak memory ({wall:.0f} s)", peak, "MB")


# what the measured processes run; each prints its high-water mark (MB) when loaded and when done
HIGH_WATER = """
def high_water():  # this process's own peak: ru_maxrss would carry the parent's over the exec (Linux)
    import resource, sys
    try:
        return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) / 1024
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (2**20 if sys.platform == "darwin" else 1024)
"""
STEM = HIGH_WATER + """
import sys, tempfile
import numpy as np, soxr
from bridge.render.generate import bundle
from bridge.render.project import Project
from bridge.render.stems import render_track
from bridge.session import Session, Track
bundle(sys.argv[1])
soxr.resample(np.zeros(8000, np.float32), 8000, 48000)
print(high_water())
track = Track("bench", sys.argv[1], seconds=float(sys.argv[2]), seed=1)
with tempfile.TemporaryDirectory(prefix="wavestack-bench-") as tmp:
    session = Session(project=tmp + "/project", tracks=[track])
    render_track(session, track, Project(session.project))
print(high_water())
"""
PRIMED = HIGH_WATER + """
import sys, numpy as np
from engine import load_bundle
stack = load_bundle(sys.argv[1]).stack
print(high_water())
t = np.arange(int(float(sys.argv[2]) * stack.sample_rate)) / stack.sample_rate
primer = (0.3 * np.sin(2 * np.pi * 220 * t) * np.exp(-(t % 1.0) * 3)).astype(np.float32)
stack.continue_(primer, 1.0, seed=1)
print(high_water())
"""


def high_water_marks(code: str, args: list[str], env: dict[str, str]) -> tuple[list[float], float]:
    """The high-water marks (MB) Python ``code`` prints, run with ``args`` in a fresh process, and
    its wall seconds."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"measuring {' '.join(args)} failed: {done.stderr[-300:]}")
    return [float(line) for line in done.stdout.split()[-2:]], time.perf_counter() - started


def run(model: str, burst_messages: int, lengths: list[float], primer_seconds: float) -> None:
    """Print every figure, one per line."""
    def report(label: str, value: float, unit: str) -> None:
        print(f"  {label:<72} {value:>10,.1f} {unit}", flush=True)

    print("reliability:")
    burst(burst_messages, report)
    handling(report)
    amplification(report)
    memory(model, lengths, primer_seconds, report)
