"""VST3 plugins run in a plugin host: a child process, never wavestack's own.

A VST3 plugin is native code — loading one runs its constructors — so, as a DAW's plugin sandbox
does, every process that checks or renders effects (the server, ``wavestack render``, batch
workers) hands its VST3 steps to one host process of its own, started on first use. The host
loads each plugin, reports its parameters (the scan a chain is checked against) and runs audio
through a fresh instance of it for each render. A plugin that crashes or hangs takes only the
host down: the request fails with a one-line :class:`PluginFailed`, the plugin stays refused
until its file changes, and the next request starts a fresh host.

Plugins load only from the standard VST3 folders and from folders named in
``WAVESTACK_PLUGIN_PATH`` (what ``--plugin-path`` sets). A host request waits at most
``WAVESTACK_PLUGIN_TIMEOUT`` seconds (default 600: some reverbs take minutes to load) plus the
length of the audio it processes.

The wire between the two: a 4-byte little-endian length and a JSON header per message, then the
header's ``bytes`` of float32 audio (channels × frames, C order) when it carries audio.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

PATH_VARIABLE = "WAVESTACK_PLUGIN_PATH"
TIMEOUT_VARIABLE = "WAVESTACK_PLUGIN_TIMEOUT"
DEFAULT_TIMEOUT = 600.0
SECONDS_PER_AUDIO_SECOND = 2.0  # processing may take this long per second of audio, beyond the timeout
STAYS_OFF = "it stays off until the plugin file changes"


class PluginFailed(ValueError):
    """A plugin crashed, hung or could not be loaded; the message says which and what happened."""


def standard_folders() -> list[Path]:
    """Where VST3 plugins are installed on this system (the VST3 SDK's locations)."""
    home = Path.home()
    if sys.platform == "darwin":
        return [home / "Library/Audio/Plug-Ins/VST3", Path("/Library/Audio/Plug-Ins/VST3")]
    if sys.platform == "win32":
        common = os.environ.get("COMMONPROGRAMFILES", r"C:\Program Files\Common Files")
        return [Path(common) / "VST3", Path(os.environ.get("LOCALAPPDATA", home)) / "Programs/Common/VST3"]
    return [home / ".vst3", Path("/usr/lib/vst3"), Path("/usr/local/lib/vst3")]


def plugin_folders() -> list[Path]:
    """The folders plugins may load from: ``WAVESTACK_PLUGIN_PATH``'s, then the standard ones."""
    extra = [Path(p).expanduser() for p in os.environ.get(PATH_VARIABLE, "").split(os.pathsep) if p]
    return extra + standard_folders()


def add_folders(folders: list[str]) -> None:
    """Let plugins load from ``folders`` too, in this process and every process it starts."""
    current = [p for p in os.environ.get(PATH_VARIABLE, "").split(os.pathsep) if p]
    added = [str(Path(f).expanduser().resolve()) for f in folders]
    missing = [f for f, a in zip(folders, added, strict=True) if not Path(a).is_dir()]
    if missing:
        raise ValueError(f"plugin folder not found: {missing[0]}")
    os.environ[PATH_VARIABLE] = os.pathsep.join(dict.fromkeys(added + current))


def allowed(path: str | Path) -> bool:
    """Whether ``path`` (links resolved) lies inside one of the plugin folders."""
    real = Path(path).resolve()
    return any(real.is_relative_to(folder.resolve()) for folder in plugin_folders())


def timeout() -> float:
    """Seconds a host request may take before the host is stopped (``WAVESTACK_PLUGIN_TIMEOUT``)."""
    try:
        value = float(os.environ.get(TIMEOUT_VARIABLE, DEFAULT_TIMEOUT))
    except ValueError:
        return DEFAULT_TIMEOUT
    return value if value > 0 else DEFAULT_TIMEOUT


def version_of(path: str | Path) -> tuple[str, int, int]:
    """A plugin bundle's identity: its real path, newest modification time and total size."""
    real = Path(path).resolve()
    files = [real] if real.is_file() else [p for p in real.rglob("*") if p.is_file()]
    stats = [p.stat() for p in files]
    return str(real), max((s.st_mtime_ns for s in stats), default=0), sum(s.st_size for s in stats)


# ---------------------------------------------------------------------------------------- the wire

def _send(out: BinaryIO, header: dict[str, Any], audio: np.ndarray | None = None) -> None:
    payload = b"" if audio is None else np.ascontiguousarray(audio, dtype=np.float32).tobytes()
    if audio is not None:
        header = dict(header, shape=list(audio.shape), bytes=len(payload))
    text = json.dumps(header).encode()
    out.write(struct.pack("<I", len(text)) + text + payload)
    out.flush()


def _read_exact(inp: BinaryIO, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = inp.read(n - got)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _receive(inp: BinaryIO) -> tuple[dict[str, Any], np.ndarray | None]:
    (size,) = struct.unpack("<I", _read_exact(inp, 4))
    header = json.loads(_read_exact(inp, size))
    if "bytes" not in header:
        return header, None
    audio = np.frombuffer(_read_exact(inp, header["bytes"]), np.float32).reshape(header["shape"])
    return header, audio


# ------------------------------------------------------------------------------------- the parent

class Host:
    """This process's plugin host: one child process, asked one request at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._child: subprocess.Popen | None = None
        self._refused: dict[tuple[str, int, int], str] = {}  # plugin version → why

    def scan(self, path: str) -> dict[str, tuple[Any, Any]]:
        """The plugin's parameters and their (min, max), as the host loaded it."""
        reply, _ = self._ask(path, {"op": "scan"}, None, 0.0)
        return {name: (lo, hi) for name, (lo, hi) in reply["parameters"].items()}

    def process(self, path: str, params: dict[str, Any], audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """``audio`` (channels, frames) through the plugin with ``params`` (others at their defaults)."""
        request = {"op": "process", "params": params, "sample_rate": sample_rate}
        _, out = self._ask(path, request, audio, audio.shape[1] / sample_rate)
        assert out is not None
        return out

    def pid(self) -> int | None:
        """The host process's id, if one runs."""
        child = self._child
        return child.pid if child is not None and child.poll() is None else None

    def close(self) -> None:
        """Stop the host process (the next request starts another)."""
        with self._lock:
            self._stop()

    def _ask(self, path: str, request: dict[str, Any], audio: np.ndarray | None,
             seconds: float) -> tuple[dict[str, Any], np.ndarray | None]:
        version = version_of(path)
        name = Path(path).name
        with self._lock:
            if version in self._refused:
                raise PluginFailed(f"{name} {self._refused[version]}; {STAYS_OFF}")
            child = self._start()
            limit = timeout() + SECONDS_PER_AUDIO_SECOND * seconds
            result: list[Any] = []

            def exchange() -> None:
                try:
                    _send(child.stdin, dict(request, path=path, version=list(version)), audio)
                    result.append(_receive(child.stdout))
                except (OSError, EOFError, ValueError) as exc:
                    result.append(exc)

            worker = threading.Thread(target=exchange, name="plugin host request", daemon=True)
            worker.start()
            worker.join(limit)
            if worker.is_alive() or not result or isinstance(result[0], Exception):
                hung = worker.is_alive()
                self._stop()
                worker.join(5)
                doing = "loading" if request["op"] == "scan" else "rendering"
                why = (f"did not answer within {limit:.0f} s while {doing}" if hung else
                       f"crashed while {doing} ({_exit_reason(child.returncode)})")
                self._refused[version] = why
                raise PluginFailed(f"{name} {why}; {STAYS_OFF}")
            reply, out = result[0]
            if not reply["ok"]:
                error = PluginFailed if reply.get("kind") == "load" else RuntimeError
                raise error(f"{name}: {reply['error']}")
            return reply, out

    def _start(self) -> subprocess.Popen:
        if self._child is not None and self._child.poll() is None:
            return self._child
        root = str(Path(__file__).resolve().parents[2])
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
        env = dict(os.environ, PYTHONPATH=path)
        proc = subprocess.Popen([sys.executable, "-m", "bridge.render.pluginhost"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        self._child = proc
        return proc

    def _stop(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            child.kill()
            child.wait()
            for stream in (child.stdin, child.stdout):
                with contextlib.suppress(OSError):
                    stream.close()


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


HOST = Host()


# -------------------------------------------------------------------------------------- the child

def _serve(inp: BinaryIO, out: BinaryIO) -> None:
    """The host's loop: one reply per request until its parent closes the pipe.

    A plugin instance processes audio once: a VST3's reset does not always clear its delay lines,
    so every render gets a fresh instance (the one a scan loaded, if it has not rendered yet).
    """
    import pedalboard

    fresh: dict[tuple[str, ...], Any] = {}  # plugin version → an instance that has not processed audio
    while True:
        try:
            request, audio = _receive(inp)
        except EOFError:
            return
        path, key = request["path"], tuple(request["version"])
        if key not in fresh:
            try:
                fresh[key] = pedalboard.load_plugin(path)
            except (ImportError, RuntimeError, ValueError) as exc:
                text = "cannot load: " + " ".join(str(exc).split())
                _send(out, {"ok": False, "kind": "load", "error": text})
                continue
        if request["op"] == "scan":
            params = {n: [getattr(p, "min_value", None), getattr(p, "max_value", None)]
                      for n, p in fresh[key].parameters.items()}
            _send(out, {"ok": True, "parameters": params})
            continue
        plugin = fresh.pop(key)
        try:
            for name, value in request["params"].items():
                setattr(plugin, name, value)
            result = plugin.process(np.array(audio), request["sample_rate"], reset=True)
        except (TypeError, ValueError, RuntimeError, KeyError) as exc:
            _send(out, {"ok": False, "error": " ".join(str(exc).split()) or "refused"})
            continue
        _send(out, {"ok": True}, np.asarray(result, np.float32))


def _die_with_parent() -> None:
    """On Linux, have the kernel kill this host when its parent dies, even inside a hung plugin."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def main() -> None:
    """The host process: serve requests on stdin/stdout until the parent goes."""
    _die_with_parent()
    # the wire is this process's own copy of stdout; whatever a plugin prints goes to stderr
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    _serve(sys.stdin.buffer, out)


if __name__ == "__main__":
    main()
