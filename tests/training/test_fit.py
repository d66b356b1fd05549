from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from engine import load_bundle
from engine.errors import ConfigError
from engine.level import Level
from tests.tiny import tiny_level
from training.checkpoint import load_checkpoint, read_meta
from training.cli import main
from training.config import load
from training.errors import RunError
from training.export import export
from training.stages import encode_sequences
from training.trainer import fit

from .conftest import tones

ROOT = Path(__file__).parents[2]


def log_rows(run: Path, stage: str) -> list[dict]:
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [r for r in rows if r.get("stage") == stage and "bits" in r]


def test_every_stage_trains_and_level1_loss_falls_on_tones(tiny_toml, tone_dir, tmp_path):
    cfg = load(tiny_toml, ["stages.level1.steps=80", "stages.level1.lr=3e-3", "stages.level1.warmup=5",
                           "stages.level1.lr_final=1e-3"])
    manifest = fit(cfg, tone_dir, tmp_path / "run", show_progress=False)
    assert "finished" in manifest
    rows = log_rows(tmp_path / "run", "level1")
    assert rows[-1]["bits"] < rows[0]["bits"] - 0.5  # from ≈ 8 bits/sample down by over half a bit
    for stage in ("level1", "level2", "prior", "baseline"):
        assert read_meta(tmp_path / "run" / "checkpoints" / f"{stage}.safetensors")["done"]
        assert log_rows(tmp_path / "run", stage)
    assert {"usage", "perplexity", "elements_per_s"} <= set(rows[-1])


def _fit_cmd(toml: Path, data: Path, run: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "training.cli", "fit", "--config", str(toml), "--data", str(data),
            "--run", str(run), "--quiet", *extra]


def _sets(*overrides: str) -> list[str]:
    return [arg for item in overrides for arg in ("--set", item)]


# long enough that a run is caught in the middle of level 1, whose reference runs here in-process
KILL_SETTINGS = ["stages.level1.steps=100", "stages.level1.checkpoint_every=20"]


def test_a_killed_fit_resumes_and_ends_in_the_same_state(tiny_toml, tone_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    fit(load(tiny_toml, KILL_SETTINGS), tone_dir, straight, show_progress=False)

    proc = subprocess.Popen(_fit_cmd(tiny_toml, tone_dir, killed, *_sets(*KILL_SETTINGS)), env=env, cwd=ROOT)
    ckpt = killed / "checkpoints" / "level1.safetensors"
    deadline = time.monotonic() + 120
    step = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if ckpt.is_file():
            try:
                step = read_meta(ckpt)["step"]
            except RunError:
                step = 0  # caught between write and rename: cannot happen, but do not flake on it
            if step >= 40:
                break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 40 <= step < 100, "the run must be killed in the middle of level 1"
    assert not read_meta(ckpt)["done"]
    assert not (killed / "checkpoints" / "prior.safetensors").exists()

    fit(load(tiny_toml, KILL_SETTINGS), tone_dir, killed, show_progress=False)
    assert len(json.loads((killed / "run.json").read_text())["fits"]) == 2
    for stage in ("level1", "level2", "prior", "baseline"):
        a = load_file(str(straight / "checkpoints" / f"{stage}.safetensors"))
        b = load_file(str(killed / "checkpoints" / f"{stage}.safetensors"))
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), f"{stage} differs after resuming"
        assert read_meta(killed / "checkpoints" / f"{stage}.safetensors")["step"] == \
            read_meta(straight / "checkpoints" / f"{stage}.safetensors")["step"]


def test_resuming_with_another_stack_or_data_is_refused(tiny_toml, tone_dir, tmp_path):
    run = tmp_path / "run"
    fit(load(tiny_toml), tone_dir, run, show_progress=False)
    with pytest.raises(RunError, match="another stack or seed"):
        fit(load(tiny_toml, ["stack.levels.0.quantizer.codes=32"]), tone_dir, run, show_progress=False)
    # a run recorded before a setting existed resumes: the new setting's default is what it used
    manifest = json.loads((run / "run.json").read_text())
    del manifest["config"]["stack"]["levels"][0]["encoder_input"]
    (run / "run.json").write_text(json.dumps(manifest))
    fit(load(tiny_toml), tone_dir, run, show_progress=False)
    (tone_dir / "tone0.wav").unlink()
    with pytest.raises(RunError, match="other data"):
        fit(load(tiny_toml), tone_dir, run, show_progress=False)


def test_export_writes_a_bundle_the_engine_loads_and_samples(tiny_toml, tone_dir, tmp_path):
    run = tmp_path / "run"
    fit(load(tiny_toml), tone_dir, run, show_progress=False)
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"level1": {"bits_per_sample": 7.5}}))
    path = export(run, name="tones", out=tmp_path / "bundle", metrics_file=metrics, sampling={"top_p": 0.9})
    bundle = load_bundle(path)
    assert bundle.trained and bundle.meta["metrics"]["level1"]["bits_per_sample"] == 7.5
    assert bundle.sampling == {"temperature": 1.0, "top_p": 0.9}  # what new tracks of it start from
    prov = bundle.meta["provenance"]
    assert prov["steps"] == {"level1": 30, "level2": 20, "prior": 20, "baseline": 10}
    assert prov["config"]["seed"] == 3 and prov["data"]["files"] == 3 and "git_commit" in prov
    audio = bundle.stack.sample(0.1, seed=4)
    assert audio.shape == (1, 800) and np.isfinite(audio).all()
    # the exported weights are the trained ones, not a fresh initialisation
    trained = load_file(str(run / "checkpoints" / "prior.safetensors"))
    assert torch.equal(bundle.stack.prior.head2.weight, trained["model.head2.weight"])


def test_exporting_an_unfinished_run_says_which_stage_is_missing(tiny_toml, tone_dir, tmp_path):
    run = tmp_path / "run"
    fit(load(tiny_toml), tone_dir, run, show_progress=False)
    (run / "checkpoints" / "prior.safetensors").unlink()
    with pytest.raises(RunError, match="stage prior is not finished"):
        export(run, name="x", out=tmp_path / "b")
    with pytest.raises(RunError, match="not a run directory"):
        export(tmp_path / "nothing", name="x", out=tmp_path / "b")


def test_cli_reports_bad_input_in_one_line(tiny_toml, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["fit", "--config", str(tiny_toml), "--data", str(tmp_path / "empty"),
                 "--run", str(tmp_path / "run"), "--quiet"]) == 2
    assert "holds no audio files" in capsys.readouterr().err
    assert main(["fit", "--config", str(tiny_toml), "--data", str(tmp_path), "--run", str(tmp_path / "r"),
                 "--set", "stages.prior.batch=zero"]) == 2
    assert "stages.prior.batch: expected an integer" in capsys.readouterr().err


def test_a_run_started_from_a_bundle_goes_on_from_its_weights_and_history(tiny_toml, tone_dir, tmp_path,
                                                                         capsys):
    first = tmp_path / "first"
    fit(load(tiny_toml), tone_dir, first, show_progress=False)
    bundle = export(first, name="tones", out=tmp_path / "bundle")
    # no learning in the second run: its weights must be the bundle's (all but the VQ codebook,
    # which moves by its running averages, not by the optimiser)
    still = [f"stages.{s}.{k}={v}" for s in ("level1", "level2", "prior", "baseline")
             for k, v in (("steps", 2), ("lr", 1e-30), ("lr_final", 1e-30))]
    second = tmp_path / "second"
    fit(load(tiny_toml, still), tone_dir, second, show_progress=False, init=bundle, until="prior")
    again = export(second, name="tones2", out=tmp_path / "bundle2")
    old, new = load_bundle(bundle), load_bundle(again)
    moved = {k for k in old.stack.state_dict() if not torch.allclose(
        old.stack.state_dict()[k].float(), new.stack.state_dict()[k].float(), atol=1e-6)}
    assert moved == {f"levels.0.quantizer.{k}" for k in ("codebook", "ema_count", "ema_sum")}
    prov = new.meta["provenance"]
    assert prov["initialised_from"]["model_hash"] == old.hash
    assert prov["total_steps"] == {"level1": 32, "level2": 22, "prior": 22}
    with pytest.raises(RunError, match="another --init"):  # resuming must name the same start
        fit(load(tiny_toml, still), tone_dir, second, show_progress=False, until="prior")
    other = load(tiny_toml, ["stack.levels.0.decoder.residual=16"])
    with pytest.raises(RunError, match="same shape"):
        fit(other, tone_dir, tmp_path / "third", show_progress=False, init=bundle)
    # a level may grow its view of the codes: the new blocks start as the identity
    grown = tmp_path / "grown"
    changes = ["stack.levels.0.cond_context_blocks=2", "stack.levels.0.sampling.lpc_bandwidth=0.99"]
    fit(load(tiny_toml, [*still, *changes]), tone_dir, grown, show_progress=False, init=bundle,
        until="level1")
    grown_stack = load(tiny_toml, ["stack.levels.0.cond_context_blocks=2"]).stack
    level = Level(grown_stack.levels[0], input_classes=256, sample_rate=grown_stack.sample_rate)
    load_checkpoint(grown / "checkpoints" / "level1.safetensors", level)
    vectors = torch.randn(1, level.cfg.quantizer.code_dim, 50, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # (the VQ codebook itself moves by its running averages)
        assert torch.allclose(level.cond_net(vectors), old.stack.levels[0].cond_net(vectors), atol=1e-6)
    err = capsys.readouterr().err
    assert "conditioning context block(s) new in this run" in err
    # a run that samples otherwise than its bundle says so, and how to keep the bundle's
    assert "level 1 will sample as this config says ({'lpc_bandwidth': 0.99})" in err
    assert "--set stack.levels.0.sampling.KEY=VALUE" in err


def test_frozen_codes_train_a_bundles_decoders_and_leave_its_codes_and_prior_valid(
        tiny_toml, tone_dir, tmp_path):
    first = tmp_path / "first"
    fit(load(tiny_toml), tone_dir, first, show_progress=False)
    bundle = export(first, name="tones", out=tmp_path / "bundle")
    more = [f"stages.{s}.{k}={v}" for s in ("level1", "level2")
            for k, v in (("steps", 6), ("lr", 3e-3), ("freeze_codes", "true"))]
    more += ["stages.prior.steps=0"]  # the prior as the bundle has it
    second = tmp_path / "second"
    fit(load(tiny_toml, more), tone_dir, second, show_progress=False, init=bundle, until="prior")
    old, new = load_bundle(bundle), load_bundle(export(second, name="t2", out=tmp_path / "b2"))
    before, after = old.stack.state_dict(), new.stack.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    # the encoders, quantisers (the VQ codebook and its running averages too) and code predictors
    # are as they were, and so is the prior (0 steps); every level's decoder has learnt
    assert not {k for k in moved if k.startswith("prior.") or
                k.split(".")[2] in ("encoder", "quantizer", "code_prior")}
    assert new.meta["provenance"]["total_steps"]["prior"] == old.meta["provenance"]["total_steps"]["prior"]
    assert all(any(k.startswith(f"levels.{i}.decoder.") for k in moved) for i in (0, 1))
    audio = tones()[0][None, :4000]
    assert all(torch.equal(a, b) for a, b in zip(old.stack.encode(audio), new.stack.encode(audio),
                                                     strict=True))
    # a level's checkpoint remembers the setting: resuming without it is refused
    with pytest.raises(RunError, match="freeze_codes"):
        fit(load(tiny_toml, [*more[:2], "stages.level1.steps=9"]), tone_dir, second, show_progress=False,
            init=bundle, until="level1")
    with pytest.raises(ConfigError, match="only a level"):
        load(tiny_toml, ["stages.prior.freeze_codes=true"])
    with pytest.raises(RunError, match="without --init give it steps"):
        fit(load(tiny_toml, more), tone_dir, tmp_path / "third", show_progress=False)


def test_a_run_reuses_the_finished_levels_another_run_trained_the_same_way(tiny_toml, tone_dir, tmp_path):
    first, second, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    fit(load(tiny_toml), tone_dir, first, show_progress=False, until="level2")
    wider = ["stack.levels.1.decoder.layers=3"]  # another level 2, the same level 1
    manifest = fit(load(tiny_toml, wider), tone_dir, second, show_progress=False, until="level2", reuse=first)
    assert manifest["reused"] == {"level1": str(first)}
    assert (second / "checkpoints" / "level1.safetensors").read_bytes() == \
        (first / "checkpoints" / "level1.safetensors").read_bytes()
    assert read_meta(second / "checkpoints" / "level2.safetensors")["done"]
    assert log_rows(second, "level1") == [] and log_rows(second, "level2")  # level 1 was not trained again
    changed = ["stack.levels.0.decoder.layers=3"]  # another level 1: nothing to reuse
    manifest = fit(load(tiny_toml, changed), tone_dir, other, show_progress=False, until="level1",
                   reuse=first)
    assert manifest["reused"] == {} and log_rows(other, "level1")


def test_a_stopped_fit_writes_its_checkpoint_first_and_resumes_exactly(tiny_toml, tone_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    settings = ["stages.level1.steps=100", "stages.level1.checkpoint_every=10000",
                "stages.level1.checkpoint_seconds=10000"]
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    fit(load(tiny_toml, settings), tone_dir, straight, show_progress=False, until="level1")
    proc = subprocess.Popen(_fit_cmd(tiny_toml, tone_dir, stopped, "--until", "level1", *_sets(*settings)),
                            env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    log = stopped / "log.jsonl"
    while time.monotonic() < deadline and proc.poll() is None and \
            not (log.is_file() and len(log_rows(stopped, "level1")) >= 3):
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)  # what the end of a session or `kill` sends
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    meta = read_meta(stopped / "checkpoints" / "level1.safetensors")  # no periodic one was due
    assert 0 < meta["step"] < 100 and not meta["done"]
    cut = tmp_path / "cut"  # the same run, its stage cut to where it stopped: finished there
    shutil.copytree(stopped, cut)
    fit(load(tiny_toml, [*settings, f"stages.level1.steps={meta['step']}"]), tone_dir, cut,
        show_progress=False, until="level1")
    assert read_meta(cut / "checkpoints" / "level1.safetensors") == {**meta, "done": True}
    fit(load(tiny_toml, settings), tone_dir, stopped, show_progress=False, until="level1")
    a = load_file(str(straight / "checkpoints" / "level1.safetensors"))
    b = load_file(str(stopped / "checkpoints" / "level1.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_stop_asked_for_while_encoding_ends_it_before_the_next_file():
    level = Level(tiny_level(), input_classes=256)
    sequences = [np.random.default_rng(i).integers(0, 256, 400) for i in range(5)]
    asked = []

    def should_stop() -> bool:
        asked.append(True)
        return len(asked) == 3

    with pytest.raises(KeyboardInterrupt, match="encodes it again"):
        encode_sequences(level, sequences, should_stop=should_stop)
    assert len(asked) == 3  # two files encoded, none after the stop
    assert len(encode_sequences(level, sequences, should_stop=lambda: False)) == 5



def test_a_level_may_fit_its_predictor_to_its_own_draws(tiny_toml, tone_dir, tmp_path):
    few = ["stages.level1.steps=3", "stages.level1.log_every=1"]
    with pytest.raises(RunError, match="predictor_draws needs a level whose decoder reads a linear"):
        fit(load(tiny_toml, [*few, "stages.level1.predictor_draws=true"]), tone_dir, tmp_path / "none",
            show_progress=False, until="level1")
    lpc = [*few, "stack.levels.0.decoder.lpc_order=8", "stack.levels.0.decoder.lpc_centre=input"]
    plain, drawn = tmp_path / "plain", tmp_path / "drawn"
    fit(load(tiny_toml, lpc), tone_dir, plain, show_progress=False, until="level1")
    fit(load(tiny_toml, [*lpc, "stages.level1.predictor_draws=true"]), tone_dir, drawn,
        show_progress=False, until="level1")
    # the same batches from the same start: the first step's loss differs only by the predictor
    first = [log_rows(run, "level1")[0]["bits"] for run in (plain, drawn)]
    assert first[0] != first[1] and all(np.isfinite(first))
    assert len(log_rows(drawn, "level1")) == 3
    # drawn as the level samples: its loudness gate makes loud positions sharper, so the fit differs again
    gated = [*lpc, "stack.levels.0.sampling.loud_db=-60", "stack.levels.0.sampling.loud_temperature=0.1"]
    with pytest.raises(ConfigError, match="predictor_draws_as_sampled needs predictor_draws"):
        load(tiny_toml, [*gated, "stages.level1.predictor_draws_as_sampled=true"])
    runs = [tmp_path / "gated", tmp_path / "gated-as-sampled"]
    for run, extra in zip(runs, ([], ["stages.level1.predictor_draws_as_sampled=true"]), strict=True):
        fit(load(tiny_toml, [*gated, "stages.level1.predictor_draws=true", *extra]), tone_dir, run,
            show_progress=False, until="level1")
    second = [log_rows(run, "level1")[0]["bits"] for run in runs]
    assert second[0] != second[1] and all(np.isfinite(second))
    # only half of each batch fitted to draws: a loss unlike either
    with pytest.raises(ConfigError, match="predictor_draws_share needs predictor_draws"):
        load(tiny_toml, [*lpc, "stages.level1.predictor_draws_share=0.5"])
    half = tmp_path / "half"
    shared = ["stages.level1.predictor_draws=true", "stages.level1.predictor_draws_share=0.5"]
    fit(load(tiny_toml, [*lpc, *shared]), tone_dir, half, show_progress=False, until="level1")
    third = log_rows(half, "level1")[0]["bits"]
    assert np.isfinite(third) and third not in first
