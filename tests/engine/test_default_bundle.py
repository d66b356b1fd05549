"""The shipped default model: trained with this package, its provenance and held-out metrics recorded."""

import json
from pathlib import Path

import numpy as np

from engine import load_bundle
from engine.catalog import package_models_dir
from training.config import load, parse

ROOT = Path(__file__).parents[2]


def recorded_recipe(provenance: dict):
    """The repository's default recipe with the overrides of a run's last recorded ``fit`` command."""
    words = provenance["fits"][-1]["command"].split()
    sets = [words[i + 1] for i, word in enumerate(words) if word == "--set"]
    return load(ROOT / "training" / "configs" / "default.toml", sets)


def test_default_bundle_ships_trained_with_its_recipe_and_samples():
    bundle = load_bundle("default")
    meta = json.loads((bundle.path / "bundle.json").read_text())
    assert bundle.path == package_models_dir() / "default" and meta["trained"] is True
    assert sum((bundle.path / e["file"]).stat().st_size for e in meta["components"].values()) < 20e6
    provenance, total = meta["provenance"], {}
    while provenance:  # this training, then the one of the bundle it went on from (fit --init), …
        assert all(f["command"].startswith("wavestack-train fit") for f in provenance["fits"])
        assert provenance["corpus_recipe"]["corpus"] == "bach-piano"
        config = recorded_recipe(provenance)  # the config in the repo made it, as the command says
        assert parse(provenance["config"]) == config  # (a field added since reads as its default)
        assert {"level1", "prior"} <= set(provenance["steps"])  # (a run may stop before the baseline)
        assert provenance["steps"] == {n: config.stages[n].steps for n in provenance["steps"]}
        total = {n: total.get(n, 0) + s for n, s in provenance["steps"].items()}
        provenance = provenance.get("initialised_from", {}).get("provenance")
    assert meta["provenance"]["total_steps"] == {n: total[n] for n in meta["provenance"]["steps"]}
    audio = bundle.stack.sample(0.05, seed=1)
    assert audio.shape == (1, 800) and np.isfinite(audio).all() and np.abs(audio).max() > 0


def test_default_bundle_metrics_clear_the_bars():
    metrics = json.loads((package_models_dir() / "default" / "bundle.json").read_text())["metrics"]
    sampling = load_bundle("default").sampling  # new tracks start from what the figures were taken at
    generated = metrics["generated"]
    assert sampling == {"temperature": generated["temperature"], "top_p": generated["top_p"]}
    levels = [name for name in metrics if name.startswith("level")]
    assert levels and all(metrics[name]["usage"] >= 0.5 for name in levels)
    assert metrics["level1"]["bits_per_sample"] < 8  # below a uniform guess over 256 μ-law classes
    heldout = metrics["heldout_audio"]
    # neither silence nor clipping: loudness (BS.1770, gated, so rests between phrases do not count)
    assert abs(generated["loudness_lufs"] - heldout["loudness_lufs"]) < 6
    assert generated["flatness"] < 0.2  # white noise measures about 0.56
    # notes, not noise and not a drone: pitch clarity (noise 0.01, held-out audio 0.39) and the
    # variety of its strongest pitch classes (a drone 0, held-out audio 2.5)
    assert generated["pitch_clarity"] > 0.2 and generated["pitch_variety"] > 1.5
    # it plays most of the time (held-out audio: all of it; earlier samplings 0.55 and 0.67),
    # measured over several seeds, each seed's figures kept (one seed says little)
    assert generated["seeds"] >= 3 and len(generated["per_seed"]) == generated["seeds"]
    assert generated["sounding"] > 0.7
    # rendered from true codes, the noise between the partials is within 10 dB of the μ-law round
    # trip's, and the notes are kept
    recon = metrics["reconstruction"]
    assert recon["from_level1"]["interpartial_db"] <= recon["mulaw_roundtrip"]["interpartial_db"] + 10
    assert recon["from_level1"]["chroma_agreement"] >= 0.9
    # fewer onset chirps than the previous sampling (0.041), though many more than held-out piano
    assert generated["references"]["rising_share_heldout"] < generated["rising_share"] < 0.035
    # the codes are used: the decoder beats its unconditional twin, trained as long on the same data
    assert metrics["level1"]["bits_per_sample"] < metrics["baseline"]["bits_per_sample"] - 0.25
