"""A model's bundle says the sampling it was measured with; new tracks, `generate` and batch specs
start from it (and every render records what it used)."""

from __future__ import annotations

import json

import soundfile as sf

from bridge.batch.spec import load_spec
from bridge.cli.main import main
from engine.bundle import save_bundle
from tests.tiny import make_stack

from .conftest import Client
from .test_batch import write_spec

P = "/wavestack"


def measured_model(models_dir, monkeypatch) -> str:
    """A tiny model whose bundle says it was measured at top-p 0.9."""
    save_bundle(make_stack(2, seed=3), models_dir / "focused", name="focused", trained=False,
                sampling={"top_p": 0.9})
    monkeypatch.setenv("WAVESTACK_MODELS", str(models_dir))
    return "focused"


def test_a_new_track_starts_from_its_models_sampling(server, client: Client, tmp_path, monkeypatch):
    model = measured_model(tmp_path, monkeypatch)
    save_bundle(make_stack(2, seed=4), tmp_path / "plain", name="plain", trained=False)  # says nothing
    assert client.ask(f"{P}/track/add", "keys", model)[0] == f"{P}/ack"
    assert client.ask(f"{P}/track/add", "pad", "plain")[0] == f"{P}/ack"
    keys, pad = server.session.track("keys"), server.session.track("pad")
    assert (keys.temperature, keys.top_p) == (1.0, 0.9) and (pad.temperature, pad.top_p) == (1.0, 1.0)
    assert client.ask(f"{P}/track/top_p", "keys", 1.0)[0] == f"{P}/ack"  # and the user may change it
    assert server.session.track("keys").top_p == 1.0


def test_generate_takes_the_models_sampling_unless_told(tmp_path, monkeypatch):
    model = measured_model(tmp_path, monkeypatch)
    for extra, top_p in (([], 0.9), (["--top-p", "0.5"], 0.5)):
        out = tmp_path / f"take{top_p}.wav"
        assert main(["generate", "--model", model, "--seconds", "0.01", "--seed", "1", "--out", str(out),
                     "--quiet", *extra]) == 0
        with sf.SoundFile(out) as f:
            assert json.loads(f.comment)["top_p"] == top_p


def test_a_batch_track_without_sampling_takes_its_models(tmp_path, monkeypatch):
    model = measured_model(tmp_path, monkeypatch)
    spec = write_spec(tmp_path / "b", f"""
[session]
project = "out"
[[tracks]]
name = "a"
model = "{model}"
seconds = 0.1
seeds = [1, 2]
[[tracks]]
name = "b"
model = "{model}"
seconds = 0.1
top_ps = [0.5, 1.0]
""")
    jobs = load_spec(spec).jobs
    assert [(j.track.name, j.track.top_p) for j in jobs] == [("a", 0.9), ("a", 0.9), ("b", 0.5), ("b", 1.0)]
