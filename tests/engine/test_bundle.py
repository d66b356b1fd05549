import dataclasses
import json
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from engine import bundle as bundle_mod
from engine import catalog
from engine.bundle import load_bundle, save_bundle
from engine.config import SamplingConfig
from engine.errors import BundleError, ModelNotFoundError
from tests.tiny import make_stack


@pytest.fixture
def saved(tmp_path):
    stack = make_stack(2)
    path = save_bundle(stack, tmp_path / "tiny", name="tiny", trained=False,
                       provenance={"note": "test"}, metrics={"nll": 1.0})
    return stack, path


def edit_manifest(path, change):
    meta = json.loads((path / "bundle.json").read_text())
    change(meta)
    (path / "bundle.json").write_text(json.dumps(meta))


def rewrite_weights(path, comp, change):
    file = path / f"{comp}.safetensors"
    tensors = load_file(str(file))
    change(tensors)
    save_file(tensors, str(file))
    edit_manifest(path, lambda m: m["components"][comp].update(sha256=bundle_mod.sha256_file(file)))


def test_save_load_sample_is_identical(saved):
    stack, path = saved
    loaded = load_bundle(path)
    assert loaded.name == "tiny" and not loaded.trained and loaded.sample_rate == 8000
    assert np.array_equal(stack.sample(0.02, seed=3), loaded.stack.sample(0.02, seed=3))
    meta = json.loads((path / "bundle.json").read_text())
    assert meta["format"] == "wavestack-bundle" and meta["format_version"] == catalog.FORMAT_VERSION == 3
    assert meta["sampling"] == {"temperature": 1.0, "top_p": 1.0} == loaded.sampling  # none given
    assert meta["provenance"] == {"note": "test"} and meta["metrics"] == {"nll": 1.0}
    assert set(meta["components"]) == {"level1", "level2", "prior"}
    for entry in meta["components"].values():
        assert entry["sha256"] == bundle_mod.sha256_file(path / entry["file"])


def test_hash_identifies_the_model(saved, tmp_path):
    stack, path = saved
    again = save_bundle(stack, tmp_path / "again", name="again", trained=True)
    assert load_bundle(path).hash == load_bundle(again).hash  # same config and weights
    other = save_bundle(make_stack(2, seed=1), tmp_path / "other", name="other", trained=False)
    assert load_bundle(other).hash != load_bundle(path).hash
    # how a level is sampled is part of the model: the same weights sampled otherwise hash otherwise
    level = dataclasses.replace(stack.cfg.levels[0], sampling=SamplingConfig(temperature=0.4))
    stack.cfg = dataclasses.replace(stack.cfg, levels=(level, *stack.cfg.levels[1:]))
    sharper = load_bundle(save_bundle(stack, tmp_path / "sharper", name="sharper", trained=True))
    assert sharper.hash != load_bundle(path).hash
    assert sharper.stack.cfg.levels[0].sampling == SamplingConfig(temperature=0.4)


def test_save_refuses_to_overwrite(saved):
    stack, path = saved
    with pytest.raises(BundleError, match="already exists"):
        save_bundle(stack, path, name="tiny", trained=False)


def test_missing_manifest(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="has no bundle.json"):
        load_bundle(tmp_path / "empty")


def test_missing_weights_file(saved):
    _, path = saved
    (path / "prior.safetensors").unlink()
    with pytest.raises(BundleError, match="prior.safetensors is missing"):
        load_bundle(path)


def test_bad_hash(saved):
    _, path = saved
    data = bytearray((path / "level1.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (path / "level1.safetensors").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="does not match its sha256"):
        load_bundle(path)


def test_unknown_weight_keys(saved):
    _, path = saved
    rewrite_weights(path, "prior", lambda t: t.update(extra=torch.zeros(3)))
    with pytest.raises(BundleError, match=r"unknown keys \['extra'\]"):
        load_bundle(path)


def test_missing_weight_keys(saved):
    _, path = saved
    rewrite_weights(path, "prior", lambda t: t.pop("head2.bias"))
    with pytest.raises(BundleError, match=r"missing keys \['head2.bias'\]"):
        load_bundle(path)


def test_wrong_shapes(saved):
    _, path = saved
    rewrite_weights(path, "level1", lambda t: t.update({"decoder.head2.bias": torch.zeros(7)}))
    with pytest.raises(BundleError, match=r"decoder.head2.bias has shape \(7,\), the config needs"):
        load_bundle(path)


def test_a_bundle_carries_the_sampling_it_was_measured_with(tmp_path):
    path = save_bundle(make_stack(2, seed=1), tmp_path / "b", name="b", trained=False,
                       sampling={"top_p": 0.9})
    assert load_bundle(path).sampling == {"temperature": 1.0, "top_p": 0.9}
    with pytest.raises(BundleError, match=r"sampling top_p must be a number in \[0.01, 1\], got 1.5"):
        save_bundle(make_stack(2, seed=1), tmp_path / "c", name="c", trained=False, sampling={"top_p": 1.5})
    edit_manifest(path, lambda m: m["sampling"].update(temperature="hot"))
    with pytest.raises(BundleError, match="sampling temperature must be a number"):
        load_bundle(path)


def test_a_format_1_bundle_still_loads_with_the_default_sampling(saved):
    _, path = saved
    edit_manifest(path, lambda m: (m.update(format_version=1), m.pop("sampling")))
    assert load_bundle(path).sampling == {"temperature": 1.0, "top_p": 1.0}
    edit_manifest(path, lambda m: m.update(sampling={"top_p": 0.9}))  # not a key of format 1
    with pytest.raises(BundleError, match=r"unknown keys \['sampling'\]"):
        load_bundle(path)


def test_bundles_before_format_3_load_without_the_last_layers_residual_conv(saved):
    stack, path = saved
    last = len(stack.prior.layers) - 1
    tensors = load_file(str(path / "prior.safetensors"))
    assert "layers.0.res.weight" in tensors and f"layers.{last}.res.weight" not in tensors
    old = {f"layers.{last}.res.weight": torch.ones(stack.prior.residual, stack.prior.residual, 1),
           f"layers.{last}.res.bias": torch.ones(stack.prior.residual)}  # fed nothing before format 3
    rewrite_weights(path, "prior", lambda t: t.update(old))
    with pytest.raises(BundleError, match=rf"unknown keys \['layers.{last}.res.bias', 'layers.{last}.res"):
        load_bundle(path)  # a format-3 bundle has no such weights
    edit_manifest(path, lambda m: m.update(format_version=2))
    assert np.array_equal(stack.sample(0.02, seed=3), load_bundle(path).stack.sample(0.02, seed=3))


def test_newer_format_version(saved):
    _, path = saved
    edit_manifest(path, lambda m: m.update(format_version=99))
    with pytest.raises(BundleError, match="format 99, newer than this wavestack reads.*upgrade"):
        load_bundle(path)


def test_unknown_manifest_and_config_keys(saved):
    _, path = saved
    edit_manifest(path, lambda m: m["config"].update(colour="blue"))
    with pytest.raises(BundleError, match="unknown key.*colour"):
        load_bundle(path)
    edit_manifest(path, lambda m: (m["config"].pop("colour"), m.update(extra=1)))
    with pytest.raises(BundleError, match=r"unknown keys \['extra'\]"):
        load_bundle(path)


def test_corrupt_manifest(saved):
    _, path = saved
    (path / "bundle.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(path)


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_pickles_are_refused_without_being_unpickled(saved, writer, tmp_path):
    _, path = saved
    target = path / "prior.safetensors"
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    if writer == "pickle":
        target.write_bytes(pickle.dumps(Evil()))
    else:
        torch.save({"x": torch.zeros(1)}, target)
    edit_manifest(path, lambda m: m["components"]["prior"].update(
        sha256=bundle_mod.sha256_file(target)))
    with pytest.raises(BundleError, match="refuses to unpickle"):
        load_bundle(path)
    assert not marker.exists()


def test_weights_file_must_stay_inside_the_bundle(saved):
    _, path = saved
    edit_manifest(path, lambda m: m["components"]["prior"].update(file="../prior.safetensors"))
    with pytest.raises(BundleError, match="must be a \\*.safetensors name"):
        load_bundle(path)


def test_lookup_by_name_in_user_dir_and_package(saved, monkeypatch, tmp_path):
    _, path = saved
    monkeypatch.setenv("WAVESTACK_MODELS", str(tmp_path))
    assert catalog.user_models_dir() == tmp_path
    assert load_bundle("tiny").path == path
    assert load_bundle("default").path == catalog.package_models_dir() / "default"
    with pytest.raises(ModelNotFoundError, match="model 'piano' not found; installed: default, tiny"):
        load_bundle("piano")


def test_xdg_data_home_is_the_default_user_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("WAVESTACK_MODELS", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert catalog.user_models_dir() == tmp_path / "wavestack" / "models"


def test_missing_directory_path(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_bundle(tmp_path / "nope")
