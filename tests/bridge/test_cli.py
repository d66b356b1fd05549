import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from bridge.cli.main import main
from engine import load_bundle


def test_models_lists_the_default(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.split() and x.split()[0] == "default")
    assert "16000 Hz" in line and "yes: level1 " in line and " steps" in line  # how much it was trained


def test_generate_writes_float_wav_at_bundle_rate_with_its_recipe(tmp_path, capsys):
    out = tmp_path / "take.wav"
    assert main(["generate", "--seconds", "0.02", "--seed", "7", "--out", str(out), "--quiet"]) == 0
    audio, rate = sf.read(out, dtype="float32")
    assert rate == 16000 and audio.shape == (320,)
    with sf.SoundFile(out) as f:
        assert f.subtype == "FLOAT"
        record = json.loads(f.comment)
    bundle = load_bundle("default")
    assert record["seed"] == 7 and record["model_hash"] == bundle.hash
    # the recorded recipe renders the same audio again
    again = bundle.stack.sample(record["seconds"], seed=record["seed"],
                                temperature=record["temperature"], top_p=record["top_p"])
    assert np.array_equal(again[0], audio)
    assert "seed 7" in capsys.readouterr().out


def test_generate_batch_writes_numbered_files(tmp_path):
    out = tmp_path / "var.wav"
    assert main(["generate", "--seconds", "0.01", "--seed", "1", "--batch", "2",
                 "--out", str(out), "--quiet"]) == 0
    a, _ = sf.read(tmp_path / "var_1.wav")
    b, _ = sf.read(tmp_path / "var_2.wav")
    assert a.shape == b.shape == (160,) and not np.array_equal(a, b)


def test_generate_never_overwrites_unless_asked(tmp_path, capsys):
    out = tmp_path / "take.wav"
    out.write_bytes(b"precious")
    assert main(["generate", "--seconds", "0.01", "--seed", "1", "--out", str(out), "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == b"precious"
    assert main(["generate", "--seconds", "0.01", "--seed", "1", "--out", str(out), "--quiet",
                 "--overwrite"]) == 0
    assert sf.info(out).frames == 160
    assert [p.name for p in tmp_path.iterdir()] == ["take.wav"]  # no temporary files left


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seconds", "0"], "seconds must be in"),
        (["--seconds", "1", "--temperature", "0"], "--temperature must be a number in [0.05, 2]"),
        (["--seconds", "1", "--temperature", "5"], "--temperature must be a number in [0.05, 2]"),
        (["--seconds", "1", "--top-p", "2"], "--top-p must be a number in [0.01, 1]"),
        (["--seconds", "1", "--model", "piano"], "model 'piano' not found; installed: default"),
        (["--seconds", "1", "--batch", "0"], "--batch must be in"),
    ],
)
def test_generate_bad_input_is_a_clear_error(tmp_path, capsys, args, message):
    code = main(["generate", *args, "--seed", "1", "--out", str(tmp_path / "x.wav"), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())


def test_generate_refuses_a_missing_output_folder_before_loading_anything(tmp_path, capsys):
    code = main(["generate", "--seconds", "1", "--out", str(tmp_path / "no" / "such" / "x.wav"), "--quiet"])
    assert code == 2 and "does not exist; create it first" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench", "--seconds", "0"], "--seconds and --batch-seconds must be > 0"),
        (["merge", "MERGED", "nothere"], "nothere is not a wavestack project"),
        (["render", "--project", "nothere"], "project folder nothere does not exist"),
        (["render", "--project", "."], "wavestack-session.json not found"),
        (["generate", "--seconds", "1", "--out", "/proc/x.wav"], "cannot write in folder /proc"),
    ],
)
def test_commands_answer_mistakes_in_one_line_and_change_nothing(tmp_path, monkeypatch, capsys, argv,
                                                                 message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["-m", "bridge.cli", "serve"], ["-m", "plugin_ui.app"]])
def test_a_port_out_of_range_is_refused_by_serve_and_the_window(command):
    result = subprocess.run([sys.executable, *command, "--port", "99999"], capture_output=True, text=True,
                            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert result.returncode == 2 and "a port is a whole number in [0, 65535], got '99999'" in result.stderr
    assert "Traceback" not in result.stderr


def test_console_scripts_run(tmp_path):
    result = subprocess.run([sys.executable, "-m", "bridge.cli", "--help"], capture_output=True,
                            text=True, check=True)
    assert "generate" in result.stdout and "bench" in result.stdout


def test_bench_prints_the_figures(capsys):
    # the batch figures include a Ray started for the bench when Ray (a test dependency) is there
    with_ray = importlib.util.find_spec("ray") is not None
    assert main(["bench", "--naive-steps", "5", "--steps", "20", "--seconds", "0.01", "--batch-renders", "2",
                 "--batch-seconds", "0.05", *(["--batch-ray"] if with_ray else [])]) == 0
    out = capsys.readouterr().out
    for label in ("matrix-vector", "reference decoder R32/S128/L20, naive recompute", "cached torch, batch 1",
                  "cached numpy, batch 1", "cached fast, batch 1", "cached fast / naive", "GFLOP/s",
                  "matrix-vector limit", "fast batch 16 total, 2 thread(s)", "matrix-matrix peak",
                  "bundle bottom decoder",
                  "real-time factor", "--jobs 1 (incl.", "--jobs 2 (incl."):
        assert label in out
    if with_ray:
        rates = [float(next(line for line in out.splitlines() if how in line).split()[-6].replace(",", ""))
                 for how in ("--jobs 1 (incl.", "--jobs 2 (incl.", "--ray (local, incl.")]
        assert all(rate > 0 for rate in rates) and "renders failed" not in out, out
        ray = sys.modules.get("ray")  # (not imported here: Ray reads how to bind when first imported)
        assert ray is None or not ray.is_initialized()  # the Ray the bench started is gone again


def test_bench_reliability_prints_what_the_server_and_renders_hold(capsys, tiny_model):
    assert main(["bench", "--reliability", "--model", tiny_model, "--burst", "300", "--memory-seconds",
                 "0.2", "--primer-seconds", "0.5"]) == 0
    figures = {line.rsplit(None, 2)[0].strip(): float(line.rsplit(None, 2)[1].replace(",", ""))
               for line in capsys.readouterr().out.splitlines()[1:]}
    received, dropped = (figures[k] for k in figures if k.startswith("burst of 300 pings"))
    assert 0 < received <= 100 and round(received * 3) + dropped == 300  # every ping accounted for
    assert 0 < figures["handling one ping (parse, dispatch, reply): CPU"] < 10_000  # µs
    assert 0 < figures["handling one /tempo edit (parse, dispatch, reply): CPU"] < 10_000
    assert figures["/state/get of 128 tracks: bytes answered per byte asked"] > 100  # 28 bytes in
    assert 50 < figures[next(k for k in figures if k.startswith("render a 0.2-s stem"))] < 4000  # MB
    own = figures["of which the render's own (growth over the loaded model)"]
    assert 0 < own <= figures["the estimate it is checked with before it starts"]
    assert next(k for k in figures if k.startswith("continue a 0.5-s primer"))


@pytest.mark.parametrize("argv", [["--memory-seconds", "a,b"], ["--burst", "0"]])
def test_bench_reliability_refuses_bad_figures(capsys, argv):
    assert main(["bench", "--reliability", *argv]) == 2
    assert "--memory-seconds" in capsys.readouterr().err


@pytest.mark.parametrize("sampler", ["torch", "numpy", "fast"])
def test_generate_sampler_choice_is_recorded_and_deterministic(tmp_path, sampler):
    outs = [tmp_path / f"{sampler}{i}.wav" for i in range(2)]
    for out in outs:
        assert main(["generate", "--seconds", "0.01", "--seed", "2", "--sampler", sampler,
                     "--out", str(out), "--quiet"]) == 0
    assert np.array_equal(sf.read(outs[0])[0], sf.read(outs[1])[0])
    with sf.SoundFile(outs[0]) as f:
        assert json.loads(f.comment)["sampler"] == sampler


def test_render_renders_a_saved_session_like_the_server(tmp_path, tiny_model, capsys):
    project = tmp_path / "song"
    project.mkdir()
    session = {"tempo": 120, "sample_rate": 44100, "tracks": [
        {"name": "a", "model": tiny_model, "bars": 0.25, "seed": 3},
        {"name": "b", "model": tiny_model, "seconds": 0.2, "at_bar": 2, "seed": 4}]}
    (project / "wavestack-session.json").write_text(json.dumps(session))
    assert main(["render", "--project", str(project), "--quiet"]) == 0
    names = sorted(p.name for p in (project / "Audio").iterdir())
    assert names == ["01_a_take1.wav", "02_b_take1.wav", "mix_take1.wav"]
    assert sf.info(project / "Audio" / "01_a_take1.wav").frames == round(0.25 * 2.0 * 44100)
    assert main(["render", "--project", str(project), "--track", "b", "--quiet"]) == 0
    assert (project / "Audio" / "02_b_take2.wav").is_file()
    assert not (project / "Audio" / "mix_take2.wav").exists()  # one track: no mix
    capsys.readouterr()
    assert main(["render", "--project", str(project), "--track", "zzz", "--quiet"]) == 2
    assert "no track named 'zzz'" in capsys.readouterr().err
    (project / "wavestack-session.json").write_text('{"tempo": 1000}')
    assert main(["render", "--project", str(project)]) == 2
    assert "must be a number in [20, 300]" in capsys.readouterr().err
