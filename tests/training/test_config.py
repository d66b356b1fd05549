from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from engine.errors import ConfigError
from training.config import apply_override, load, parse


def raw(path: Path) -> dict:
    return tomllib.loads(path.read_text())


def test_loads_the_tiny_config_with_every_stage_in_order(tiny_toml):
    cfg = load(tiny_toml)
    assert cfg.stage_names() == ["level1", "level2", "prior", "baseline"]
    assert cfg.stages["level1"].steps == 30 and cfg.stages["level1"].segment == 512
    assert cfg.stack.levels[1].quantizer.kind == "argmax"
    assert parse(cfg.to_dict()) == cfg  # the run manifest round-trips


def test_the_default_config_is_valid():
    cfg = load(Path(__file__).parents[2] / "training" / "configs" / "default.toml")
    assert cfg.stack.hops == (8,) and "baseline" in cfg.stages and cfg.stack.levels[0].rate == 0.1


def test_overrides_reach_nested_keys_and_list_items(tiny_toml):
    cfg = load(tiny_toml, ["stages.level1.steps=7", "stack.levels.0.strides=[4]", "stages.prior.lr=1e-3"])
    assert cfg.stages["level1"].steps == 7
    assert cfg.stack.levels[0].strides == (4,)
    assert cfg.stages["prior"].lr == pytest.approx(1e-3)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("stages.level1.stepz=3", "unknown key(s) stepz"),
        ("stages.level3.steps=3", "unknown stage(s) level3"),
        ("stages.level1.steps=-1", "steps must be ≥ 0"),
        ("stages.level1.batch=0", "batch must be ≥ 1"),
        ("stages.level1.steps=many", "expected an integer"),
        ("stack.levels.5.strides=[2]", "not an index"),
        ("seed=-1", "integer ≥ 0"),
        ("nothing", "key=value"),
        ("colour=1", "unknown key(s) colour"),
    ],
)
def test_bad_values_are_refused_with_the_key_named(tiny_toml, override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load(tiny_toml, [override])


def test_a_missing_stage_is_an_error(tiny_toml):
    data = raw(tiny_toml)
    del data["stages"]["prior"]
    with pytest.raises(ConfigError, match=r"missing \[stages.prior\]"):
        parse(data)


def test_unreadable_and_missing_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[stack\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(bad)


def test_string_override_values_stay_strings():
    data: dict = {}
    apply_override(data, "a.b=hello world")
    assert data == {"a": {"b": "hello world"}}
