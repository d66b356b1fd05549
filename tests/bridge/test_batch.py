from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf

from bridge.batch.run import group_jobs, run_batch
from bridge.batch.spec import SpecError, load_spec
from bridge.cli.main import main
from bridge.render import generate as render_module

ROOT = Path(__file__).parents[2]

SPEC = """
[session]
project = "out"
tempo = 240
sample_rate = 44100
[[tracks]]
name = "keys"
model = "tiny"
bars = 0.25
seeds = [1, 2, 3]
[[tracks]]
name = "pad"
model = "tiny"
seconds = 0.2
position = 1.0
seeds = [4, 5, 6]
fx = [{plugin = "Gain", gain_db = -3}]
"""


def write_spec(folder: Path, text: str = SPEC) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.toml").write_text(text)
    return folder / "spec.toml"


def spec_with_a_broken_primer(folder: Path) -> Path:
    """SPEC with track keys primed by a good clip and by one that only looks like a WAV file."""
    clips = folder / "clips"
    clips.mkdir()
    sf.write(clips / "good.wav", [0.1] * 4000, 8000)
    (clips / "broken.wav").write_bytes(b"RIFF not audio")
    return write_spec(folder, SPEC.replace('seeds = [1, 2, 3]', 'seeds = [1]\nprimers = "clips/*.wav"'))


def audio_by_key(project: Path) -> dict[str, bytes]:
    manifest = json.loads((project / "wavestack.json").read_text())
    out = {}
    for render in manifest["renders"]:
        if "batch_key" in render:
            assert render["batch_key"] not in out, "a render was recorded twice"
            audio, _ = sf.read(project / render["files"][0]["path"], dtype="float32")
            out[render["batch_key"]] = audio.tobytes()
    return out


def test_two_tracks_by_three_seeds_render_six_stems(tmp_path, tiny_model):
    spec = load_spec(write_spec(tmp_path))
    summary = run_batch(spec, show_progress=False, log=lambda _: None)
    assert len(summary.outcomes) == 6 and not summary.failed
    project = tmp_path / "out"
    names = sorted(p.name for p in (project / "Audio").iterdir())
    assert names == [f"01_keys_take{i}.wav" for i in (1, 2, 3)] + [f"02_pad_take{i}.wav" for i in (1, 2, 3)]
    assert sf.info(project / "Audio" / "01_keys_take1.wav").frames == round(0.25 * 1.0 * 44100)
    assert len(audio_by_key(project)) == 6
    assert (project / "wavestack.rpp").read_text().count("<TRACK") == 2
    # a second run finds everything done
    again = run_batch(load_spec(tmp_path / "spec.toml"), show_progress=False)
    assert again.skipped == 6 and again.outcomes == []


def test_jobs_2_gives_the_same_audio_as_jobs_1(tmp_path, tiny_model):
    one, two = write_spec(tmp_path / "one"), write_spec(tmp_path / "two")
    assert main(["batch", str(one), "--quiet"]) == 0
    assert main(["batch", str(two), "--jobs", "2", "--quiet"]) == 0
    assert audio_by_key(tmp_path / "one" / "out") == audio_by_key(tmp_path / "two" / "out")


def test_workers_render_the_jobs_they_are_sent_even_if_the_spec_file_changes(tmp_path, tiny_model):
    one, two = write_spec(tmp_path / "one"), write_spec(tmp_path / "two")
    assert main(["batch", str(one), "--quiet"]) == 0
    spec = load_spec(two)
    two.write_text(SPEC.replace("seeds = [1, 2, 3]", "seeds = [97, 98, 99]"))  # edited mid-run
    summary = run_batch(spec, workers=2, show_progress=False, log=lambda _: None)
    assert len(summary.outcomes) == 6 and not summary.failed
    assert audio_by_key(tmp_path / "two" / "out") == audio_by_key(tmp_path / "one" / "out")


def test_shards_split_the_jobs_deterministically(tmp_path, tiny_model):
    spec = load_spec(write_spec(tmp_path))
    a, b = spec.shard(1, 2), spec.shard(2, 2)
    assert sorted(j.index for j in a + b) == list(range(6)) and not {j.key for j in a} & {j.key for j in b}
    assert [j.key for j in load_spec(tmp_path / "spec.toml").shard(1, 2)] == [j.key for j in a]


def test_a_killed_batch_resumes_to_the_same_final_set(tmp_path, models_dir):
    many = SPEC.replace("seeds = [1, 2, 3]", "seeds = [1, 2, 3, 7, 8, 9, 10, 11]")
    straight, killed = write_spec(tmp_path / "straight", many), write_spec(tmp_path / "killed", many)
    env = {**os.environ, "WAVESTACK_MODELS": str(models_dir), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "bridge.cli", "batch", "--quiet"]
    subprocess.run([*cmd, str(straight)], check=True, env=env, capture_output=True)
    proc = subprocess.Popen([*cmd, str(killed)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    audio = tmp_path / "killed" / "out" / "Audio"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (audio.is_dir() and len(list(audio.glob("*.wav"))) >= 3):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 3 <= len(list(audio.glob("*.wav"))) < 11, "killed in the middle"
    subprocess.run([*cmd, str(killed)], check=True, env=env, capture_output=True)
    assert audio_by_key(tmp_path / "killed" / "out") == audio_by_key(tmp_path / "straight" / "out")
    assert len(list(audio.glob("*.wav"))) == 11  # nothing twice, nothing partial


def test_every_problem_of_a_spec_is_listed_with_its_location(tmp_path, tiny_model):
    bad = """
colour = 1
[session]
tempo = 1000
bit_depth = 12
[[tracks]]
name = "keys"
model = "nope"
seconds = 1
temperatures = [1.0, 9.0]
fx = [{plugin = "Reverb", room_size = 5}]
[[tracks]]
name = "b"
seconds = 1
bars = 2
primers = "missing/*.wav"
seed_list = [1]
"""
    with pytest.raises(SpecError) as caught:
        load_spec(write_spec(tmp_path, bad))
    text = str(caught.value)
    for expected in ("colour: unknown table", "session.project: missing", "session.tempo:",
                     "session.bit_depth:",
                     "tracks[0].temperatures[1]:", "tracks[0].fx:", "tracks[1]: give seconds or bars",
                     "tracks[1].primers: no file matches",
                     "tracks[0].model: model 'nope' not found",  # listed with the others, not after
                     "tracks[1].seed_list: unknown key; a track takes"):
        assert expected in text, expected
    assert "random_seeds" in text and "temperatures" in text  # the spec's own keys are offered
    assert "/wavestack/" not in text  # spec keys, not OSC addresses
    assert main(["batch", str(tmp_path / "spec.toml")]) == 2


def test_a_render_that_fails_late_is_recorded_and_the_batch_goes_on(tmp_path, tiny_model):
    spec = spec_with_a_broken_primer(tmp_path)
    summary = run_batch(load_spec(spec), show_progress=False, log=lambda _: None)
    assert len(summary.failed) == 1 and "broken.wav" in summary.failed[0].reason
    assert len(summary.outcomes) == 2 + 3  # the good primer and the other track's three seeds
    manifest = json.loads((tmp_path / "out" / "wavestack.json").read_text())
    assert [r["kind"] for r in manifest["renders"]].count("failed") == 1
    assert main(["batch", str(spec), "--quiet"]) == 1  # the failed one is tried again, and fails again


def test_the_example_spec_is_valid_and_expands_as_documented():
    spec = load_spec(ROOT / "examples" / "batch.toml")
    assert len(spec.jobs) == 24 and spec.session.project.endswith("examples/batch-out")


def test_a_stem_written_but_not_recorded_before_a_kill_is_not_duplicated(tmp_path, tiny_model):
    spec_path = write_spec(tmp_path)
    run_batch(load_spec(spec_path), show_progress=False, log=lambda _: None)
    project = tmp_path / "out"
    manifest = json.loads((project / "wavestack.json").read_text())
    lost = manifest["renders"].pop()  # as if killed between writing the stem and recording it
    (project / "wavestack.json").write_text(json.dumps(manifest))
    before = audio_by_key(project)
    messages: list[str] = []
    summary = run_batch(load_spec(spec_path), show_progress=False, log=messages.append)
    assert len(summary.outcomes) == 1 and any("not recorded" in m for m in messages)
    assert len(list((project / "Audio").glob("*.wav"))) == 6
    after = audio_by_key(project)
    assert set(after) == set(before) | {lost["batch_key"]} and len(after) == 6


def test_shards_merged_equal_the_unsharded_result_and_conflicts_are_refused(tmp_path, tiny_model):
    whole = write_spec(tmp_path / "whole")
    first, second = write_spec(tmp_path / "s1"), write_spec(tmp_path / "s2")
    assert main(["batch", str(whole), "--quiet"]) == 0
    assert main(["batch", str(first), "--shard", "1/2", "--quiet"]) == 0
    assert main(["batch", str(second), "--shard", "2/2", "--quiet"]) == 0
    merged = tmp_path / "merged"
    assert main(["merge", str(merged), str(tmp_path / "s1" / "out"), str(tmp_path / "s2" / "out")]) == 0
    assert audio_by_key(merged) == audio_by_key(tmp_path / "whole" / "out")
    assert (merged / "wavestack.rpp").read_text().count("<TRACK") == 2
    # merging again changes nothing
    assert main(["merge", str(merged), str(tmp_path / "s1" / "out")]) == 0
    assert len(list((merged / "Audio").glob("*.wav"))) == 6
    # a take that renders a key differently is a conflict: nothing is copied
    manifest = json.loads((tmp_path / "s2" / "out" / "wavestack.json").read_text())
    stem = tmp_path / "s2" / "out" / manifest["renders"][0]["files"][0]["path"]
    stem.write_bytes(stem.read_bytes()[:-8] + bytes(8))
    assert main(["merge", str(merged), str(tmp_path / "s2" / "out")]) == 2
    assert len(list((merged / "Audio").glob("*.wav"))) == 6


def test_mixes_sum_each_variation_of_every_track_through_the_master_chain(tmp_path, tiny_model):
    spec_path = write_spec(tmp_path, SPEC.replace('sample_rate = 44100', 'sample_rate = 44100\nmixes = true\n'
                                                  'master_fx = [{plugin = "Gain", gain_db = -6}]'))
    summary = run_batch(load_spec(spec_path), show_progress=False, log=lambda _: None)
    assert [Path(p).name for p in summary.mixes] == [f"mix_v0{k}_take1.wav" for k in (1, 2, 3)]
    project = tmp_path / "out"
    manifest = json.loads((project / "wavestack.json").read_text())
    mixes = [r for r in manifest["renders"] if r["kind"] == "mix"]
    first = mixes[0]
    keys = {r["batch_key"]: r for r in manifest["renders"] if r.get("batch_key")}
    a, b = (sf.read(project / keys[k]["files"][0]["path"], dtype="float32")[0] for k in first["stem_keys"])
    mixed, _ = sf.read(project / first["files"][0]["path"], dtype="float32")
    half = 10 ** (-6 / 20)
    # keys starts at 0 s, pad at 1 s: the mix starts at 0 and is their sum, 6 dB down
    assert len(mixed) == 44100 + len(b)
    assert abs(mixed[: len(a)] - half * a).max() < 1e-4 and abs(mixed[44100:] - half * b).max() < 1e-4
    assert run_batch(load_spec(spec_path), show_progress=False).mixes == []  # nothing twice


def test_a_master_chain_without_mixes_is_a_spec_problem(tmp_path, tiny_model):
    spec_path = write_spec(tmp_path, SPEC.replace('sample_rate = 44100', 'sample_rate = 44100\n'
                                                  'master_fx = [{plugin = "Gain", gain_db = -6}]'))
    with pytest.raises(SpecError, match="set mixes = true"):
        load_spec(spec_path)


def test_jobs_that_can_share_a_pass_are_grouped_and_render_what_they_render_alone(tmp_path, tiny_model,
                                                                                 monkeypatch):
    spec = load_spec(write_spec(tmp_path / "grouped"))
    groups = group_jobs(spec, spec.jobs)
    assert [[j.track.name for j in g] for g in groups] == [["keys"] * 3, ["pad"] * 3]  # lengths differ
    row_seconds = render_module.ROW_SECONDS
    monkeypatch.setattr(render_module, "ROW_SECONDS", 0.5)  # two rows of 0.25 s per pass
    assert [len(g) for g in group_jobs(spec, spec.jobs)] == [2, 1, 2, 1]
    monkeypatch.setattr(render_module, "ROW_SECONDS", row_seconds)
    assert not run_batch(spec, show_progress=False, log=lambda _: None).failed
    monkeypatch.setattr(render_module, "MAX_ROWS", 1)  # every job alone
    alone = load_spec(write_spec(tmp_path / "alone"))
    assert all(len(g) == 1 for g in group_jobs(alone, alone.jobs))
    assert not run_batch(alone, show_progress=False, log=lambda _: None).failed
    assert audio_by_key(tmp_path / "grouped" / "out") == audio_by_key(tmp_path / "alone" / "out")


def test_jobs_with_a_primer_render_alone_and_drawn_seeds_share_a_pass(tmp_path, tiny_model):
    clips = tmp_path / "clips"
    clips.mkdir()
    sf.write(clips / "a.wav", [0.1] * 4000, 8000)
    text = SPEC.replace("seeds = [1, 2, 3]", 'seeds = [1, 2]\nprimers = "clips/*.wav"')
    text = text.replace("seeds = [4, 5, 6]", "random_seeds = 2")
    spec = load_spec(write_spec(tmp_path, text))
    random = [j for j in spec.jobs if j.track.name == "pad"]
    assert all(j.track.seed >= 0 for j in random)  # drawn once when the spec is read: batchable
    assert [len(g) for g in group_jobs(spec, spec.jobs)] == [1, 1, 2]


@pytest.mark.skipif(not Path("/usr/lib/vst3/ZamDelay.vst3").exists(),
                    reason="Debian zam-plugins is not installed (bash scripts/setup installs it)")
def test_a_job_whose_plugin_vanished_fails_alone_and_its_pass_goes_on(tmp_path, tiny_model, monkeypatch):
    plugin = tmp_path / "plugins" / "ZamDelay.vst3"  # a bundle keeps its name: its binary is named so
    monkeypatch.setenv("WAVESTACK_PLUGIN_PATH", str(plugin.parent))
    shutil.copytree("/usr/lib/vst3/ZamDelay.vst3", plugin)
    text = SPEC.replace('fx = [{plugin = "Gain", gain_db = -3}]', f'fx = [{{vst3 = "{plugin}"}}]')
    text = text.replace("bars = 0.25", "seconds = 0.2")  # both tracks: one pass of six rows
    spec = load_spec(write_spec(tmp_path, text))
    assert [len(g) for g in group_jobs(spec, spec.jobs)] == [6]
    shutil.rmtree(plugin)  # after the spec was checked
    summary = run_batch(spec, show_progress=False, log=lambda _: None)
    assert [o.track for o in summary.failed] == ["pad"] * 3
    assert all("VST3 plugin not found" in o.reason for o in summary.failed)
    assert sorted(p.name for p in (tmp_path / "out" / "Audio").iterdir()) == \
        [f"01_keys_take{i}.wav" for i in (1, 2, 3)]


NO_TORCH = """
import socket, sys
from bridge.cli.main import main
from bridge.osc.server import Server
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket
try:
    main(["--help"])
except SystemExit:
    pass
assert main(["merge", sys.argv[1], *sys.argv[2:]]) == 0
server = Server(port=0)
server.start()
client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
client.bind(("127.0.0.1", 0))
client.settimeout(10)
for address, args in (("/track/add", ["keys", "tiny"]), ("/track/bars", ["keys", 2.0]), ("/track/list", []),
                      ("/models", []), ("/state/get", [])):
    builder = OscMessageBuilder(address="/wavestack" + address)
    for arg in args:
        builder.add_arg(arg)
    client.sendto(builder.build().dgram, server.address)
    print(OscPacket(client.recvfrom(65536)[0]).messages[0].message.address)
server.shutdown()
print("loaded:", sorted(m for m in ("torch", "pedalboard", "numba", "engine.bundle") if m in sys.modules))
"""


def test_help_merge_and_the_servers_first_requests_run_without_torch(tmp_path, models_dir):
    env = {**os.environ, "WAVESTACK_MODELS": str(models_dir), "PYTHONPATH": str(ROOT)}
    for k in (1, 2):
        subprocess.run([sys.executable, "-m", "bridge.cli", "batch", str(write_spec(tmp_path / f"s{k}")),
                        "--shard", f"{k}/2", "--quiet"], check=True, env=env, capture_output=True)
    folders = [str(tmp_path / "merged"), str(tmp_path / "s1" / "out"), str(tmp_path / "s2" / "out")]
    out = subprocess.run([sys.executable, "-c", NO_TORCH, *folders], env=env, cwd=tmp_path,
                         capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-6:] == ["/wavestack/ack", "/wavestack/ack", "/wavestack/tracks",
                                            "/wavestack/models", "/wavestack/state", "loaded: []"]
    assert len(list((tmp_path / "merged" / "Audio").glob("*.wav"))) == 6


def test_a_dry_run_lists_the_renders_and_where_they_go_and_writes_nothing(tmp_path, tiny_model, capsys):
    spec = write_spec(tmp_path)
    assert main(["batch", str(spec), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count(" todo ") == 6 and f"stems go to {tmp_path / 'out'}/Audio" in out
    assert "6 of 6 renders to do" in out
    assert not (tmp_path / "out" / "Audio").exists() or not any((tmp_path / "out" / "Audio").iterdir())


def test_a_spec_too_big_or_too_deep_is_refused_up_front(tmp_path, tiny_model):
    from bridge.batch.spec import MAX_RENDERS

    huge = SPEC.replace("seeds = [1, 2, 3]", "random_seeds = 100000\ntemperatures = [0.5, 0.6, 0.7]")
    with pytest.raises(SpecError, match=f"expands to 300,00[0-9] renders; at most {MAX_RENDERS:,}"):
        load_spec(write_spec(tmp_path / "huge", huge))
    long_list = SPEC.replace("seeds = [1, 2, 3]", f"seeds = [{', '.join(['1'] * (MAX_RENDERS + 1))}]")
    with pytest.raises(SpecError, match="seeds: 100,001 values; at most 100,000"):
        load_spec(write_spec(tmp_path / "long", long_list))
    deep = write_spec(tmp_path / "deep", "x = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(SpecError, match="nested too deeply|not valid TOML"):
        load_spec(deep)


def children_of(pid: int) -> set[int]:
    """The live child processes of ``pid`` (from /proc)."""
    out = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text() if (task / "children").exists() else ""
        out |= {int(c) for c in text.split()}
    return out


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_a_killed_batch_takes_its_worker_processes_with_it(tmp_path, models_dir):
    many = SPEC.replace("seeds = [1, 2, 3]", "seeds = [1, 2, 3, 7, 8, 9, 10, 11, 12, 13]")
    spec = write_spec(tmp_path, many)
    env = {**os.environ, "WAVESTACK_MODELS": str(models_dir), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "bridge.cli", "batch", "--quiet", "--jobs", "2", str(spec)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    audio = tmp_path / "out" / "Audio"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (audio.is_dir() and list(audio.glob("*.wav"))):
        time.sleep(0.01)
    workers = children_of(proc.pid)
    assert workers, "the batch runs worker processes"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{w}").exists() for w in workers):
        time.sleep(0.05)
    alive = [w for w in workers if Path(f"/proc/{w}").exists() and
             "zombie" not in Path(f"/proc/{w}/status").read_text().lower()]
    assert alive == [], "worker processes outlived their batch"
    written = len(list(audio.glob("*.wav")))
    time.sleep(1.0)
    assert len(list(audio.glob("*.wav"))) == written  # and nobody writes any more
