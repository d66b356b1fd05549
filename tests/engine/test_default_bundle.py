import json

import numpy as np

from engine import load_bundle
from engine.bundle import package_models_dir, sha256_file
from training.placeholder import build_placeholder


def test_default_bundle_ships_and_samples():
    bundle = load_bundle("default")
    meta = json.loads((bundle.path / "bundle.json").read_text())
    assert bundle.path == package_models_dir() / "default"
    assert meta["trained"] is False  # an untrained placeholder, clearly marked
    assert sum((bundle.path / e["file"]).stat().st_size for e in meta["components"].values()) < 20e6
    audio = bundle.stack.sample(0.02, seed=1)
    assert audio.shape == (1, 320) and np.isfinite(audio).all()


def test_placeholder_regenerates_bit_identically(tmp_path):
    from engine.bundle import save_bundle

    made = save_bundle(build_placeholder(), tmp_path / "default", name="default", trained=False)
    shipped = package_models_dir() / "default"
    for comp in ("level1", "level2", "prior"):
        assert sha256_file(made / f"{comp}.safetensors") == sha256_file(
            shipped / f"{comp}.safetensors")
