"""A real Ardour for tests: Debian's ``ardour7-lua`` (Ardour's Lua session interpreter, no GUI) on the
"None (Dummy)" audio backend, with its OSC control surface on, driven line by line through Lua.

    with Ardour(tmp_path, reply_port=port) as daw:
        daw.lua("Session:request_roll(ARDOUR.TransportRequestSource.TRS_UI)")
        daw.set_tempo_map(90, 6, 8)

Ardour's OSC surface keeps its factory settings (manual reply port, replies to the sender's
address) except the reply port, which is the test's listening port; Ardour's own OSC port is
chosen free and written to a private ``$HOME/.config/ardour7/config``.

``python -m tests.bridge.ardour FILE`` captures what Ardour sends through a scripted performance
into FILE (the sequence the replayed tests in test_follow.py read).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .test_follow import until

ARDOUR_LUA = shutil.which("ardour7-lua")
SAMPLE_RATE = 48000
ROLL = "ARDOUR.TransportRequestSource.TRS_UI"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Ardour:
    """One Ardour session, created fresh in ``folder``, its OSC surface answering on ``reply_port``."""

    def __init__(self, folder: Path, reply_port: int, *, tempo: float = 120, meter: tuple[int, int] = (4, 4)):
        assert ARDOUR_LUA, "ardour7-lua is not installed (Debian package ardour)"
        self.folder = folder
        self.osc_port = free_udp_port()
        self.home = folder / "home"
        (self.home / ".config" / "ardour7").mkdir(parents=True, exist_ok=True)
        (self.home / ".config" / "ardour7" / "config").write_text(
            '<?xml version="1.0" encoding="UTF-8"?>\n<Ardour>\n  <Config>\n'
            f'    <Option name="osc-port" value="{self.osc_port}"/>\n  </Config>\n</Ardour>\n')
        self.env = {**os.environ, "HOME": str(self.home)}
        self.session_dir = folder / "song"
        self._create(tempo, meter, reply_port)
        self.proc: subprocess.Popen[str] | None = None
        self._lines: list[str] = []
        self._cond = threading.Condition()

    # ------------------------------------------------------------------ set-up
    def _create(self, tempo: float, meter: tuple[int, int], reply_port: int) -> None:
        script = self.folder / "create.lua"
        script.write_text(
            'AudioEngine:set_backend("None (Dummy)", "", "")\n'
            f'local s = create_session("{self.session_dir}", "song", {SAMPLE_RATE})\n'
            'assert(s)\n'
            + self._tempo_map_lua(tempo, *meter) +
            'Session:save_state("", false, false, false, false, false)\n'
            'close_session()\n')
        subprocess.run([ARDOUR_LUA, str(script)], env=self.env, check=True, timeout=120,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        state = self.session_dir / "song.ardour"
        text = state.read_text()
        surface = f'<Protocol name="Open Sound Control (OSC)" active="1" remote-port="{reply_port}"/>'
        text, n = re.subn(r'<Protocol name="Open Sound Control \(OSC\)"[^>]*/>', surface, text)
        assert n == 1, "no OSC protocol entry in the Ardour session file"
        state.write_text(text)

    @staticmethod
    def _tempo_map_lua(tempo: float, numerator: int, denominator: int) -> str:
        return ("local tm = Temporal.TempoMap.write_copy()\n"
                f"tm:set_tempo(Temporal.Tempo({tempo}, {tempo}, 4), Temporal.timepos_t(0))\n"
                f"tm:set_meter(Temporal.Meter({numerator}, {denominator}), Temporal.timepos_t(0))\n"
                "Temporal.TempoMap.update(tm)\n")

    def __enter__(self) -> Ardour:
        script = self.folder / "load.lua"
        script.write_text('AudioEngine:set_backend("None (Dummy)", "", "")\n'
                          f'assert(load_session("{self.session_dir}", "song"))\n'
                          'print("@@loaded")\n')
        self.proc = subprocess.Popen([ARDOUR_LUA, "-i", str(script)], env=self.env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        threading.Thread(target=self._read, daemon=True).start()
        self._wait_for("@@loaded", 120)
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self.proc is not None
        try:
            if self.proc.poll() is None and self.proc.stdin:
                self.proc.stdin.write("close_session()\nquit()\n")
                self.proc.stdin.flush()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()

    # ------------------------------------------------------------------ driving
    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self._lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def _wait_for(self, marker: str, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i, line in enumerate(self._lines):
                    if line.endswith(marker) and not line.lstrip("> ").startswith("print"):
                        out, self._lines = self._lines[:i], self._lines[i + 1:]
                        return out
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc is not None and self.proc.poll() is not None):
                    raise TimeoutError(f"Ardour did not answer {marker!r}: {self._lines[-20:]}")
                self._cond.wait(min(left, 0.2))

    def lua(self, code: str, timeout: float = 30) -> list[str]:
        """Run one line of Lua in Ardour; returns what it printed (values printed as ``@@ v1 v2``)."""
        assert self.proc is not None and self.proc.stdin is not None
        marker = f"@@done{time.monotonic_ns()}"
        self.proc.stdin.write(f"{code}\nprint('{marker}')\n")
        self.proc.stdin.flush()
        lines = self._wait_for(marker, timeout)
        errors = [line for line in lines if "Error:" in line]
        assert not errors, f"Ardour's Lua: {errors}"
        return [line.split("@@ ", 1)[1] for line in lines if "@@ " in line and "print(" not in line]

    def roll(self) -> None:
        self.lua(f"Session:request_roll({ROLL})")

    def stop(self, timeout: float = 20) -> None:
        """Stop, and return once Ardour's transport has stopped (not merely begun to)."""
        self.lua(f"Session:request_stop(false, false, {ROLL})")
        said = "print('@@ ' .. tostring(Session:transport_stopped()))"
        assert until(lambda: self.lua(said)[0] == "true", timeout), f"Ardour did not stop in {timeout} s"

    def speed(self, speed: float) -> None:
        self.lua(f"Session:request_transport_speed({speed}, {ROLL})")

    def locate(self, seconds: float, timeout: float = 20) -> None:
        """Move Ardour's playhead and return once it is there. Ardour locates asynchronously (its
        butler refills the disk buffers first) and, on a loaded machine, a request can be passed
        over, so it is asked again every 2 s until its own playhead says it arrived."""
        target = round(seconds * SAMPLE_RATE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.lua(f"Session:request_locate({target}, false, "
                     f"ARDOUR.LocateTransportDisposition.MustStop, {ROLL})")
            if until(lambda: round(self.playhead() * SAMPLE_RATE) == target, timeout=2.0):
                return
        raise AssertionError(f"Ardour's playhead did not reach {seconds} s in {timeout} s")

    def set_tempo_map(self, tempo: float, numerator: int, denominator: int) -> None:
        """One tempo (quarter notes per minute) and meter from the session start on."""
        self.lua(self._tempo_map_lua(tempo, numerator, denominator).replace("\n", " "))

    def playhead(self) -> float:
        """Ardour's own playhead, in seconds."""
        return int(self.lua("print('@@ ' .. Session:transport_sample())")[0]) / SAMPLE_RATE

    def bar_seconds(self) -> tuple[float, int, int]:
        """What Ardour's tempo map says at the playhead: one bar in seconds, numerator, denominator."""
        out = self.lua("local tm = Temporal.TempoMap.read(); "
                       "local at = Temporal.timepos_t(Session:transport_sample()); "
                       "local t = tm:tempo_at(at); local m = tm:meter_at(at); "
                       "print('@@ ' .. t:note_types_per_minute() .. ' ' .. t:note_type() .. ' ' .. "
                       "m:divisions_per_bar() .. ' ' .. m:note_value())")[0]
        npm, note_type, divisions, note_value = (float(v) for v in out.split())
        return divisions * (60.0 / npm) * (note_type / note_value), int(divisions), int(note_value)


# ---------------------------------------------------------------------- capture
def capture(out: Path) -> None:
    """Record what Ardour sends to a surface through a scripted performance, one datagram a line."""
    import tempfile

    from pythonosc.osc_message_builder import OscMessageBuilder

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)
    lines: list[str] = []
    t0 = time.monotonic()

    def listen(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                data, _ = sock.recvfrom(65535)
            except TimeoutError:
                continue
            lines.append(json.dumps([round(time.monotonic() - t0, 3), data.hex()]))

    with tempfile.TemporaryDirectory() as tmp, Ardour(Path(tmp), sock.getsockname()[1]) as daw:
        greet = OscMessageBuilder("/set_surface")
        for v in (0, 0, 8 | 16 | 32 | 2048, 0):
            greet.add_arg(v)
        sock.sendto(greet.build().dgram, ("127.0.0.1", daw.osc_port))
        listen(2)
        steps = [("roll at 120, 4/4", daw.roll, 4),
                 ("90 BPM, 6/8 while rolling", lambda: daw.set_tempo_map(90, 6, 8), 4),
                 ("speed 2", lambda: daw.speed(2.0), 2), ("stop", daw.stop, 1.5),
                 ("locate to 10 s", lambda: daw.locate(10), 1.5),
                 ("140 BPM, 3/4 while stopped", lambda: daw.set_tempo_map(140, 3, 4), 1.5),
                 ("roll", daw.roll, 3), ("stop", daw.stop, 1.5)]
        for what, step, seconds in steps:
            lines.append(json.dumps([round(time.monotonic() - t0, 3), "# " + what]))
            step()
            listen(seconds)
        lines.append(json.dumps([round(time.monotonic() - t0, 3), "# close the session"]))
        daw.lua("close_session()")
        listen(1.5)
    out.write_text("\n".join(lines) + "\n")
    print(f"captured {len(lines)} lines into {out}")


if __name__ == "__main__":
    capture(Path(sys.argv[1]))
