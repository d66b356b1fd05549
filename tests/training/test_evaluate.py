from __future__ import annotations

import numpy as np
import pytest

from training.config import load
from training.evaluate import evaluate
from training.export import export
from training.metrics import describe, loudness_lufs, mr_stft_distance
from training.trainer import fit

from .conftest import tones


def test_stft_distance_is_zero_for_identical_audio_and_grows_with_difference():
    a = tones(1.0, 16000)[0]
    noise = np.random.default_rng(0).standard_normal(len(a)).astype(np.float32)
    assert mr_stft_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    slightly, very = mr_stft_distance(a, a + 0.01 * noise), mr_stft_distance(a, 0.3 * noise)
    assert 0 < slightly < very


def test_describe_tells_tones_from_noise_and_silence():
    rate = 16000
    tone = tones(1.0, rate)[2]
    noise = 0.1 * np.random.default_rng(1).standard_normal(rate).astype(np.float32)
    t, n, s = describe(tone, rate), describe(noise, rate), describe(np.zeros(rate, np.float32), rate)
    assert t["flatness"] < 0.05 < 0.5 < n["flatness"]
    assert abs(t["centroid_hz"] - 440) < 100 and n["centroid_hz"] > 3000
    assert s["rms_dbfs"] < -150 < t["rms_dbfs"]
    assert s["loudness_lufs"] == -70 < t["loudness_lufs"]


def test_loudness_is_bs1770s_and_rests_do_not_lower_it():
    rate = 16000
    sine = 0.1 * np.sin(2 * np.pi * 997 * np.arange(3 * rate) / rate)  # BS.1770: 0.1 peak reads −23.0
    assert loudness_lufs(sine, rate) == pytest.approx(-23.0, abs=0.1)
    phrases = np.concatenate([sine, np.zeros(4 * rate), sine])  # 4 s of rest: RMS falls 2.2 dB
    assert describe(phrases, rate)["rms_dbfs"] < describe(sine, rate)["rms_dbfs"] - 2
    assert loudness_lufs(phrases, rate) == pytest.approx(loudness_lufs(sine, rate), abs=0.3)
    assert loudness_lufs(sine[: rate // 4], rate) is None  # shorter than one 0.4-s block


def test_eval_reports_every_metric_and_the_baseline(tiny_toml, tone_dir, tmp_path):
    run = tmp_path / "run"
    fit(load(tiny_toml), tone_dir, run, show_progress=False)
    bundle = export(run, name="tones", out=tmp_path / "bundle")
    m = evaluate(bundle, tone_dir, baseline_run=run, max_seconds=2.0, decode_seconds=0.1,
                 generate_seconds=0.2, seed=3)
    assert m["data"]["seconds_used"] == pytest.approx(2.0, abs=0.01)
    assert 0 < m["level1"]["bits_per_sample"] < 8.5 and 0 < m["baseline"]["bits_per_sample"] < 8.5
    assert 0 < m["level1"]["usage"] <= 1 and m["level1"]["perplexity"] >= 1
    assert m["level2"]["bits_per_code"] > 0 and m["prior"]["bits_per_code"] > 0
    assert m["reconstruction"]["teacher_forced_stft"] > 0 and m["reconstruction"]["sampled_seconds"] == 0.1
    assert m["generated"]["seconds"] == 0.2
    assert {"rms_dbfs", "flatness", "centroid_hz", "pitch_clarity"} <= set(m["generated"])
    again = evaluate(bundle, tone_dir, max_seconds=2.0, decode_seconds=0.1, generate_seconds=0.2, seed=3)
    assert "baseline" not in again
    assert again["level1"] == m["level1"] and again["generated"] == m["generated"]  # deterministic
    assert (m["generated"]["temperature"], m["generated"]["top_p"]) == (1.0, 1.0)  # the bundle's
    focused = evaluate(bundle, tone_dir, max_seconds=2.0, decode_seconds=0.1, generate_seconds=0.2, seed=3,
                       top_p=0.5)
    assert focused["generated"]["top_p"] == 0.5 and focused["level1"] == m["level1"]
    # several seeds: their figures averaged, each seed's kept; seed 3's as it renders alone
    two = evaluate(bundle, tone_dir, max_seconds=2.0, decode_seconds=0.1, generate_seconds=0.2, seed=3,
                   seeds=2)["generated"]
    assert two["seeds"] == 2 and len(two["per_seed"]) == 2
    assert two["per_seed"][0] == {k: v for k, v in m["generated"].items()
                                  if k not in ("seconds", "seed", "seeds", "temperature", "top_p")}
    for key in ("rms_dbfs", "pitch_clarity", "sounding", "rising_share"):
        assert two[key] == pytest.approx(sum(f[key] for f in two["per_seed"]) / 2, abs=1e-4)


def test_eval_of_a_run_measures_its_finished_levels_with_references_and_writes_figures(
        tiny_toml, tone_dir, tmp_path):
    from training.evaluate import evaluate_run

    run = tmp_path / "run"
    fit(load(tiny_toml), tone_dir, run, show_progress=False, until="level1")
    m = evaluate_run(run, tone_dir, max_seconds=2.0, decode_seconds=0.5, seed=3, figures=tmp_path / "fig")
    assert m["steps"] == {"level1": 30} and "level2" not in m and "prior" not in m and "generated" not in m
    refs = m["level1"]["references"]
    assert set(refs) == {"lpc16", "lpc32", "lpc64", "unigram"}
    assert refs["lpc32"] < refs["unigram"]  # slow tones: linear prediction beats a histogram
    rec = m["reconstruction"]
    assert set(rec["from_level1"]) == {"stft", "chroma_agreement", "interpartial_db", "harmonicity_db",
                                     "pitch_clarity", "rising_share"}
    assert rec["mulaw_roundtrip"]["chroma_agreement"] > 0.9 and rec["mulaw_roundtrip"]["snr_db"] > 20
    for figure in ("harmonicity_db", "pitch_clarity"):
        assert rec["white_noise"][figure] < rec["mulaw_roundtrip"][figure]
    names = {p.name for p in (tmp_path / "fig").iterdir()}
    assert {"spectrograms.png", "notes.png", "original.wav", "from_level1.wav", "white_noise.wav"} <= names
