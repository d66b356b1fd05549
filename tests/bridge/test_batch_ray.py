"""Batch rendering on a real local Ray cluster with two worker processes.

A test process starts one Ray for the module, the way ``batch --ray`` starts one for a batch
(``connect`` with no address: a single node on loopback), with the tiny model installed for its
workers. Each test's batch joins it: in this process, or, where the batch process is to be
killed, as a separate ``batch --ray auto`` process given the cluster's address. Starting a Ray
from the command line end to end is what the bench test in ``test_cli`` runs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.bridge.test_batch import SPEC, audio_by_key, spec_with_a_broken_primer, write_spec

if importlib.util.find_spec("ray") is None:  # found, not imported: the batch decides how Ray starts
    pytest.skip('Ray is an optional extra: pip install "wavestack[ray]"', allow_module_level=True)

ROOT = Path(__file__).parents[2]
LONG = """
[session]
project = "out"
[[tracks]]
name = "long"
model = "tiny"
seconds = 10
seeds = [1, 2, 3, 4]
"""  # a pass of two renders computes for about a second: a worker is killed in the middle of one


@pytest.fixture(scope="module")
def cluster(models_dir: Path):
    """The module's Ray (``ray`` module, whether ``connect`` started it, its address), started with
    the tiny model's folder in the environment its workers inherit."""
    from bridge.batch.onray import RayOptions, connect  # (it imports Ray: how Ray binds is read then)

    with pytest.MonkeyPatch.context() as env:
        env.setenv("WAVESTACK_MODELS", str(models_dir))
        ray_module, started = connect(RayOptions())
    try:
        yield ray_module, started, ray_module.get_runtime_context().gcs_address
    finally:
        ray_module.shutdown()


def batch_here(spec: Path, *args: str) -> int:
    """``wavestack batch --quiet SPEC ARGS`` in this process (with --ray: on the module's Ray)."""
    from bridge.cli.main import main

    return main(["batch", "--quiet", str(spec), *args])


def start(spec: Path, models: Path, address: str) -> subprocess.Popen:
    """``wavestack batch --ray auto`` as a process of its own, joining the Ray at ``address``
    (a single node on loopback, as the module started it)."""
    env = {**os.environ, "WAVESTACK_MODELS": str(models), "PYTHONPATH": str(ROOT),
           "RAY_ADDRESS": address, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    command = [sys.executable, "-m", "bridge.cli", "batch", "--quiet", str(spec), "--ray", "auto"]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def entries(project: Path) -> dict[str, dict]:
    """The manifest's renders by batch key, without what differs between any two runs (times)."""
    manifest = json.loads((project / "wavestack.json").read_text())
    return {r["batch_key"]: {k: v for k, v in r.items() if k not in ("started", "finished", "batch_spec")}
            for r in manifest["renders"] if "batch_key" in r}


def descendants(pid: int) -> list[int]:
    """Every live process started (directly or not) by ``pid``, from /proc."""
    out, todo = [], [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            out += children
            todo += children
    return out


def processes(title: str, root: int) -> list[int]:
    """Pids under ``root`` whose command line starts with ``title`` (Ray names a busy worker
    ray::FUNCTION); only this test's Ray, whatever else runs on the machine."""
    out = []
    for pid in descendants(root):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(title.encode()):
                out.append(pid)
        except OSError:
            continue
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_ray_renders_what_jobs_1_renders_bit_for_bit(tmp_path, tiny_model, cluster, capsys):
    one, ray = write_spec(tmp_path / "one"), write_spec(tmp_path / "ray")
    assert batch_here(one) == 0
    assert batch_here(ray, "--ray") == 0
    out = capsys.readouterr().out
    assert audio_by_key(tmp_path / "ray" / "out") == audio_by_key(tmp_path / "one" / "out")
    assert entries(tmp_path / "ray" / "out") == entries(tmp_path / "one" / "out")
    assert "worker processes        2" in out  # the cluster's CPUs, reported
    assert batch_here(ray, "--ray") == 0
    assert "already done (skipped)  6" in capsys.readouterr().out


def test_a_worker_killed_mid_task_is_retried_and_nothing_is_written_twice(tmp_path, models_dir, tiny_model,
                                                                          cluster):
    straight, killed = write_spec(tmp_path / "straight", LONG), write_spec(tmp_path / "killed", LONG)
    assert batch_here(straight) == 0
    proc = start(killed, models_dir, cluster[2])
    victims: list[int] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not victims and proc.poll() is None:
        victims = processes("ray::render_pass", os.getpid())  # the module's Ray runs under this process
        time.sleep(0.01)
    assert victims, "a worker ran a render pass"
    busy = cpu_seconds(victims[0])  # it has told the tally it started once it computes for a while
    while proc.poll() is None and cpu_seconds(victims[0]) < busy + 0.3:
        time.sleep(0.01)
    os.kill(victims[0], signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert "retried after a lost worker  1" in out
    audio = tmp_path / "killed" / "out" / "Audio"
    assert len(list(audio.glob("*.wav"))) == 4 and not list(audio.glob(".*"))  # no duplicate, no part
    assert audio_by_key(tmp_path / "killed" / "out") == audio_by_key(tmp_path / "straight" / "out")


def test_a_killed_ray_batch_run_again_renders_only_the_rest(tmp_path, models_dir, tiny_model, cluster):
    many = SPEC.replace("seeds = [1, 2, 3]", "seeds = [1, 2, 3, 7, 8, 9, 10, 11]")
    straight, killed = write_spec(tmp_path / "straight", many), write_spec(tmp_path / "killed", many)
    assert batch_here(straight) == 0
    proc = start(killed, models_dir, cluster[2])
    audio = tmp_path / "killed" / "out" / "Audio"
    deadline = time.monotonic() + 300  # a loaded machine starts its first pass slowly
    while time.monotonic() < deadline and not (audio.is_dir() and list(audio.glob("*.wav"))):
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = len(list(audio.glob("*.wav")))
    assert 1 <= first < 11, "killed in the middle"
    assert batch_here(killed, "--ray") == 0
    manifest_done = len(entries(tmp_path / "killed" / "out"))
    assert manifest_done == 11 and len(list(audio.glob("*.wav"))) == 11
    assert audio_by_key(tmp_path / "killed" / "out") == audio_by_key(tmp_path / "straight" / "out")


def test_a_render_that_fails_on_a_ray_worker_is_recorded_and_the_rest_succeed(tmp_path, tiny_model, cluster,
                                                                              capsys):
    spec = spec_with_a_broken_primer(tmp_path)
    assert batch_here(spec, "--ray") == 1  # one failed
    out = capsys.readouterr().out
    assert "rendered now            4" in out and "failed #" in out
    assert "broken.wav" in out.split("failed #")[1]
    manifest = json.loads((tmp_path / "out" / "wavestack.json").read_text())
    assert [r["kind"] for r in manifest["renders"]].count("failed") == 1
    assert len(list((tmp_path / "out" / "Audio").glob("*.wav"))) == 4


def test_ray_options_are_checked_and_a_missing_ray_says_how_to_install_it(tmp_path, tiny_model, cluster,
                                                                          capsys, monkeypatch):
    spec = write_spec(tmp_path)
    for args, words in ((["--ray", "elsewhere"], "--ray takes nothing, 'auto' or ray://"),
                        (["--ray", "--jobs", "2"], "give --jobs or --ray"),
                        (["--ray", "--cpus-per-task", "0"], "--cpus-per-task must be ≥ 1"),
                        (["--gpus-per-task", "1"], "--gpus-per-task is for --ray"),
                        (["--ray", "--gpus-per-task", "1"], "the Ray cluster has 0 GPU(s)")):
        assert batch_here(spec, *args) == 2
        err = capsys.readouterr().err
        assert words in err.splitlines()[-1], err
        assert not list((tmp_path / "out").glob("Audio/*.wav"))
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert batch_here(spec, "--ray") == 2
    assert 'pip install "wavestack[ray]"' in capsys.readouterr().err
    assert not list((tmp_path / "out").glob("Audio/*.wav"))


def listening_addresses(pids: set[int]) -> set[str]:
    """The IPv4/IPv6 addresses TCP sockets of ``pids`` listen on (from /proc)."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                out.add(fields[1].rsplit(":", 1)[0])
    return out


def test_a_ray_started_for_a_batch_listens_on_loopback_only(cluster):
    ray_module, started, address = cluster
    assert started and ray_module.nodes()[0]["NodeManagerAddress"] == "127.0.0.1"
    assert address.startswith("127.0.0.1:")
    ours = set(descendants(os.getpid()))  # the module's Ray, not another test's
    addresses = listening_addresses(ours)
    # 127.0.0.1, ::1 and ::ffff:127.0.0.1 as /proc/net writes them
    loopback = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}
    assert addresses and addresses <= loopback, addresses
