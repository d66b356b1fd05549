"""VST3 plugins run in the plugin host, a child process: plugins built here for the test prove
where their code runs, and that a crash or a hang costs one request, not the server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bridge.render import fx, pluginhost
from bridge.render.fx import FxError, apply_chain, build_board, parse_chain
from bridge.render.pluginhost import HOST, PATH_VARIABLE, TIMEOUT_VARIABLE

from .conftest import served
from .test_clients import ROOT
from .test_server import P, add_track

needs_cc = pytest.mark.skipif(shutil.which("cc") is None,
                              reason="no C compiler to build test plugins (bash scripts/setup installs gcc)")
needs_zam = pytest.mark.skipif(not Path("/usr/lib/vst3/ZamDelay.vst3").exists(),
                               reason="Debian zam-plugins is not installed (bash scripts/setup installs it)")

# A shared library in a VST3 bundle's place: loading it runs its constructor, which leaves the id of
# the process it runs in in MARK, then crashes or hangs when built so. It is no VST3 plugin, so a
# host that survives it reports that it cannot load it.
SOURCE = r"""
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
__attribute__((constructor)) static void on_load(void) {
    FILE *f = fopen(MARK, "w");
    if (f) { fprintf(f, "%d", (int)getpid()); fclose(f); }
#ifdef CRASH
    raise(SIGSEGV);
#endif
#ifdef HANG
    for (;;) sleep(1);
#endif
}
"""


def build_plugin(folder: Path, name: str, *defines: str) -> tuple[str, Path]:
    """``folder/name.vst3`` built from SOURCE with ``defines``; returns its path and its mark file."""
    mark = folder / f"{name}.pid"
    binary = folder / f"{name}.vst3" / "Contents" / "x86_64-linux" / f"{name}.so"
    binary.parent.mkdir(parents=True)
    source = folder / f"{name}.c"
    source.write_text(SOURCE)
    flags = [f'-DMARK="{mark}"', *(f"-D{d}" for d in defines)]
    subprocess.run(["cc", "-shared", "-fPIC", *flags, "-o", str(binary), str(source)], check=True)
    return str(folder / f"{name}.vst3"), mark


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    monkeypatch.setenv(PATH_VARIABLE, str(folder))
    return folder


@needs_cc
def test_a_plugin_outside_the_plugin_folders_is_refused_without_being_loaded(tmp_path, monkeypatch):
    monkeypatch.delenv(PATH_VARIABLE, raising=False)
    path, mark = build_plugin(tmp_path, "Stray")
    with pytest.raises(FxError, match="not in a plugin folder .* add its folder with --plugin-path"):
        parse_chain([{"vst3": path}])
    assert not mark.exists()  # its code never ran
    pluginhost.add_folders([str(tmp_path)])  # what --plugin-path does
    with pytest.raises(FxError, match="Stray.vst3: cannot load"):
        parse_chain([{"vst3": path}])
    assert mark.exists()


@needs_cc
def test_a_plugins_code_runs_in_the_host_not_in_this_process(plugins):
    path, mark = build_plugin(plugins, "Mark")
    with pytest.raises(FxError, match="Mark.vst3: cannot load"):
        parse_chain([{"vst3": path}])
    ran_in = int(mark.read_text())
    assert ran_in != os.getpid() and ran_in == HOST.pid()


@needs_cc
def test_a_crashing_plugin_fails_its_request_and_stays_off(plugins):
    path, mark = build_plugin(plugins, "Crash", "CRASH")
    with pytest.raises(FxError, match=r"Crash.vst3 crashed while loading \(signal SIGSEGV\); it stays off"):
        parse_chain([{"vst3": path}])
    mark.unlink()
    with pytest.raises(FxError, match="crashed while loading"):  # refused, not loaded again
        parse_chain([{"vst3": path}])
    assert not mark.exists() and HOST.pid() is None
    _, rebuilt_mark = build_plugin(plugins / "rebuilt", "Crash", "CRASH")
    shutil.rmtree(path)
    shutil.move(str(plugins / "rebuilt" / "Crash.vst3"), path)  # a new version is tried again
    with pytest.raises(FxError, match="crashed while loading"):
        parse_chain([{"vst3": path}])
    assert rebuilt_mark.exists()


@needs_cc
def test_a_hanging_plugin_fails_after_the_timeout_and_its_host_is_stopped(plugins, monkeypatch):
    monkeypatch.setenv(TIMEOUT_VARIABLE, "1")
    path, mark = build_plugin(plugins, "Hang", "HANG")
    started = time.monotonic()
    with pytest.raises(FxError, match="Hang.vst3 did not answer within 1 s while loading"):
        parse_chain([{"vst3": path}])
    assert time.monotonic() - started < 30
    host = int(mark.read_text())
    with pytest.raises(OSError):  # the host that hung was killed
        os.kill(host, 0)


DIRECT = """
import sys, numpy as np, pedalboard
from bridge.render.fx import apply_chain
plugin = pedalboard.load_plugin(sys.argv[1])
plugin.time_ms = 120
np.save(sys.argv[2], apply_chain([plugin], np.load(sys.argv[2]), 48000))
"""


@needs_zam
def test_a_hosted_plugin_sounds_as_it_does_loaded_directly(tmp_path):
    delay = "/usr/lib/vst3/ZamDelay.vst3"
    click = np.zeros((1, 24000), np.float32)
    click[0, 100] = 1.0
    echoes = apply_chain(build_board([{"vst3": delay, "params": {"time_ms": 120, "feedback": 0.7}}]), click,
                         48000)
    # the next render leaves feedback out: it is at its default, and no echo of the last render is left
    hosted = apply_chain(build_board([{"vst3": delay, "params": {"time_ms": 120}}]), click, 48000)
    np.save(tmp_path / "x.npy", click)  # the same plugin loaded and run by pedalboard in a process of its own
    subprocess.run([sys.executable, "-c", DIRECT, delay, str(tmp_path / "x.npy")], check=True, cwd=ROOT,
                   stderr=subprocess.DEVNULL)
    direct = np.load(tmp_path / "x.npy")
    assert np.abs(direct).max() > 0.1 and np.array_equal(hosted, direct)
    assert echoes.shape[1] > direct.shape[1]  # the feedback's echoes ring on


@needs_zam
def test_a_vst3_is_scanned_once_to_check_every_chain_that_uses_it(monkeypatch):
    monkeypatch.setattr(fx, "_VST3_PARAMETERS", {})
    delay = "/usr/lib/vst3/ZamDelay.vst3"
    parse_chain([{"vst3": delay, "params": {"time_ms": 100}}])
    HOST.close()
    for ms in (200, 300):
        parse_chain([{"vst3": delay, "params": {"time_ms": ms}}])
    with pytest.raises(FxError, match="time_ms must be in"):
        parse_chain([{"vst3": delay, "params": {"time_ms": -5}}])
    assert HOST.pid() is None  # checked against the scan, with no host running
    apply_chain(build_board([{"vst3": delay, "params": {"time_ms": 100}}]), np.zeros((1, 100), np.float32),
                48000)
    assert HOST.pid() is not None


@needs_cc
def test_the_server_lives_on_when_a_plugin_crashes(tmp_path, models_dir, monkeypatch):
    folder = tmp_path / "plugins"
    folder.mkdir()
    path, mark = build_plugin(folder, "Crash", "CRASH")
    monkeypatch.delenv(PATH_VARIABLE, raising=False)  # the folder is allowed by --plugin-path only
    with served(tmp_path, models_dir, "--no-oscquery", "--plugin-path", str(folder)) as (proc, client):
        add_track(client)
        client.send(f"{P}/track/fx", "keys", json.dumps([{"vst3": path}]))
        text = client.until(f"{P}/error", timeout=60)[1][-1]
        assert "Crash.vst3 crashed while loading (signal SIGSEGV)" in text
        assert int(mark.read_text()) != proc.pid
        assert client.ask(f"{P}/ping")[0] == f"{P}/pong" and proc.poll() is None


ORPHAN = """
import os, sys, threading, time
from bridge.render.fx import parse_chain
from bridge.render.pluginhost import HOST
threading.Thread(target=parse_chain, args=([{"vst3": sys.argv[1]}],), daemon=True).start()
while not os.path.exists(sys.argv[2]):
    time.sleep(0.05)
print(HOST.pid(), flush=True)
os._exit(0)  # killed while its host hangs in a plugin
"""


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] in "ZX"  # a zombie has ended
    except (FileNotFoundError, IndexError):
        return True


@needs_cc
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a parent-death signal is Linux only")
def test_a_host_hung_in_a_plugin_ends_with_the_process_that_started_it(plugins):
    path, mark = build_plugin(plugins, "Hang", "HANG")
    out = subprocess.run([sys.executable, "-c", ORPHAN, path, str(mark)], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True)
    host = int(out.stdout)
    deadline = time.monotonic() + 10
    while not gone(host):
        assert time.monotonic() < deadline, "the host outlived its parent"
        time.sleep(0.05)
