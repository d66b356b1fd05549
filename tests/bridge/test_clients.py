"""Real OSC clients: liblo's oscsend/oscdump, Pure Data running examples/wavestack.pd, SuperCollider's
sclang running examples/wavestack.scd, and the
``wavestack serve`` process itself (started, driven, stopped with SIGTERM)."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import soundfile as sf
from pythonosc.osc_message_builder import OscMessageBuilder

from bridge.render.bwf import read_bext

ROOT = Path(__file__).parents[2]
needs_liblo = pytest.mark.skipif(shutil.which("oscsend") is None or shutil.which("oscdump") is None,
                                 reason="liblo-tools is not installed (apt-get install liblo-tools)")
needs_pd = pytest.mark.skipif(shutil.which("pd") is None,
                              reason="Pure Data is not installed (apt-get install puredata-core)")
needs_sclang = pytest.mark.skipif(shutil.which("sclang") is None, reason="SuperCollider is not installed "
                                  "(apt-get install supercollider-language)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def serve(tmp_path, models_dir):
    """A ``wavestack serve`` process on a free port with the tiny model installed."""
    port, project = free_port(), tmp_path / "project"
    env = {**os.environ, "WAVESTACK_MODELS": str(models_dir), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "bridge.cli", "serve", "--port", str(port),
                             "--project", str(project)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until it answers
        if proc.poll() is not None:
            pytest.fail(f"wavestack serve exited: {proc.stdout.read()}")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            s.sendto(b"/wavestack/ping\0,\0\0\0", ("127.0.0.1", port))
            try:
                s.recvfrom(1024)
                break
            except TimeoutError:
                continue
    yield port, project, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def oscsend(port: int, address: str, types: str, *values: object) -> None:
    subprocess.run(["oscsend", "127.0.0.1", str(port), address, types, *map(str, values)], check=True)


@needs_liblo
def test_oscsend_drives_the_server_and_oscdump_reads_the_replies(serve):
    port, project, _ = serve
    dump_port = free_port()
    dump = subprocess.Popen(["oscdump", "-L", str(dump_port)], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        oscsend(port, "/wavestack/subscribe", "i", dump_port)
        oscsend(port, "/wavestack/tempo", "f", 100)
        oscsend(port, "/wavestack/track/add", "SS", "lead", "tiny")  # liblo's alternate strings
        oscsend(port, "/wavestack/track/bars", "sf", "lead", 0.5)
        oscsend(port, "/wavestack/track/at_bar", "si", "lead", 3)
        oscsend(port, "/wavestack/generate", "s", "lead")
        replies: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [replies.put(line) for line in dump.stdout], daemon=True).start()
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                line = replies.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            words = line.split()[1:]  # oscdump starts each line with a time tag
            lines.append(words)
            if words and words[0] in ("/wavestack/done", "/wavestack/error"):
                break
    finally:
        dump.terminate()
    assert ["/wavestack/ack", "s", '"/wavestack/tempo"'] in lines
    done = lines[-1]
    assert done[:3] == ["/wavestack/done", "is", "1"], lines
    stem = Path(done[3].strip('"'))
    info, bar = sf.info(stem), 4 * 60 / 100
    assert stem.parent == project.resolve() / "Audio" and info.frames == round(0.5 * bar * 48000)
    assert info.subtype == "PCM_24" and read_bext(stem).time_reference == round(2 * bar * 48000)


@needs_pd
def test_the_example_pd_patch_renders_a_track(serve, tmp_path):
    port, project, _ = serve
    reply_port = free_port()
    patch = (ROOT / "examples" / "wavestack.pd").read_text()
    patch = patch.replace("9000", str(port)).replace("9001", str(reply_port))
    patch = patch.replace("keys default", "keys tiny")
    (tmp_path / "test.pd").write_text(patch)
    done = subprocess.run(["pd", "-nogui", "-nosound", "-nomidi", "-stderr", str(tmp_path / "test.pd")],
                          capture_output=True, text=True, timeout=120)
    out = done.stdout + done.stderr
    assert "wavestack-done:" in out, out[-2000:]
    path = Path(out.split("wavestack-done:")[1].split()[1])
    assert path.is_file() and path.parent == project.resolve() / "Audio"
    assert sf.info(path).frames == round(2 * 2.0 * 48000)  # 2 bars at 120 bpm


@needs_sclang
def test_the_example_supercollider_script_renders_a_track(serve, tmp_path):
    port, project, _ = serve
    script = (ROOT / "examples" / "wavestack.scd").read_text()
    script = script.replace("9000", str(port)).replace('"keys", "default"', '"keys", "tiny"')
    script += '\n~onDone = { |path| ("wavestack-done: " ++ path).postln; 0.exit };\n'
    (tmp_path / "test.scd").write_text(script)
    # sclang needs no display with Qt offscreen, and its web engine no sandbox when run as root
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "QTWEBENGINE_DISABLE_SANDBOX": "1"}
    done = subprocess.run(["sclang", str(tmp_path / "test.scd")], capture_output=True, text=True,
                          timeout=120, env=env, cwd=tmp_path)
    out = done.stdout + done.stderr
    assert "wavestack-done: " in out and "wavestack error" not in out, out[-2000:]
    assert "ack /wavestack/track/add" in out and "rendering " in out
    path = Path(out.split("wavestack-done: ")[1].split()[0])
    assert path.is_file() and path.parent == project.resolve() / "Audio"
    assert sf.info(path).frames == round(2 * 2.0 * 48000)  # 2 bars at 120 bpm


def test_sigterm_stops_the_server_cleanly(serve):
    port, project, proc = serve
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/?HOST_INFO", timeout=5) as r:  # OSCQuery, tcp
        assert json.loads(r.read())["OSC_PORT"] == port
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "listening on udp://127.0.0.1" in out and "stopping" in out
    assert f"OSCQuery on http://127.0.0.1:{port}/" in out
    assert not [p for p in (project / "Audio").iterdir()]


def test_serve_says_clearly_when_its_port_is_taken(tmp_path, models_dir):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "bridge.cli", "serve", "--port", "0", "--oscquery-port",
                               str(port)], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2 and "cannot listen" in done.stderr and "--no-oscquery" in done.stderr


def test_a_killed_server_leaves_no_partial_stem_and_an_intact_manifest(serve):
    port, project, proc = serve
    for args in (("/wavestack/track/add", "ss", "a", "tiny"), ("/wavestack/track/seconds", "sf", "a", 0.1),
                 ("/wavestack/generate", "s", "a")):
        _send(port, *args)
    manifest = project / "wavestack.json"
    deadline = time.monotonic() + 30
    while not manifest.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    before = manifest.read_text()
    _send(port, "/wavestack/track/seconds", "sf", "a", 300.0)  # a long render (~5 s for the tiny model) …
    _send(port, "/wavestack/generate", "s", "a")
    time.sleep(1.0)
    proc.kill()  # … killed in the middle
    proc.wait()
    assert manifest.read_text() == before
    visible = sorted(p.name for p in (project / "Audio").iterdir() if not p.name.startswith("."))
    assert visible == ["01_a_take1.wav"]
    assert sf.info(project / "Audio" / "01_a_take1.wav").frames == round(0.1 * 48000)


def _send(port: int, address: str, types: str, *values: object) -> None:
    builder = OscMessageBuilder(address=address)
    for tag, value in zip(types, values, strict=True):
        builder.add_arg(value, arg_type=tag)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(builder.build().dgram, ("127.0.0.1", port))


def test_advertise_announces_osc_and_oscquery_over_zeroconf(tmp_path, models_dir):
    from zeroconf import Zeroconf

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bridge.cli", "serve", "--port", str(port), "--advertise"],
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    browser = Zeroconf()
    try:
        found = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(found) < 2:
            for kind in ("_oscjson._tcp.local.", "_osc._udp.local."):
                info = browser.get_service_info(kind, f"wavestack-{port}.{kind}", timeout=500)
                if info is not None:
                    found[kind] = (info.port, info.parsed_addresses())
        here = (port, ["127.0.0.1"])
        assert found == {"_oscjson._tcp.local.": here, "_osc._udp.local.": here}
    finally:
        browser.close()
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()  # never leave a server behind, even when the test fails
            out, _ = proc.communicate()
    assert proc.returncode == 0, out
    assert f"advertised wavestack-{port}._osc._udp.local." in out


def test_nothing_is_advertised_unless_asked(serve):
    from zeroconf import Zeroconf

    port, _, _ = serve
    browser = Zeroconf()
    try:
        kind = "_osc._udp.local."
        assert browser.get_service_info(kind, f"wavestack-{port}.{kind}", timeout=1000) is None
    finally:
        browser.close()
