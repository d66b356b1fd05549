import dataclasses

import pytest

from engine.config import LevelConfig, NetConfig, SamplingConfig, StackConfig, from_dict, to_dict
from engine.errors import ConfigError
from tests.tiny import tiny_config


def test_round_trip():
    cfg = tiny_config(3)
    assert from_dict(StackConfig, to_dict(cfg)) == cfg
    own = dataclasses.replace(cfg.levels[0], sampling=SamplingConfig(temperature=0.4, lpc_bandwidth=0.99))
    cfg = dataclasses.replace(cfg, levels=(own, *cfg.levels[1:]))
    data = to_dict(cfg)
    loud = {"loud_db": None, "loud_temperature": None, "loud_top_p": None, "loud_lpc_bandwidth": None}
    assert data["levels"][0]["sampling"] == {"temperature": 0.4, "top_p": None, "lpc_bandwidth": 0.99, **loud}
    assert data["levels"][1]["sampling"] == {"temperature": None, "top_p": None, "lpc_bandwidth": 1.0, **loud}
    assert from_dict(StackConfig, data) == cfg
    del data["levels"][0]["sampling"]["top_p"]  # a TOML file leaves out what it does not set
    assert from_dict(StackConfig, data) == cfg


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"levels": [{"stridez": [2]}]}, r"config.levels\[0\]: unknown key\(s\) stridez"),
        ({"levels": [{"strides": "2"}]}, r"config.levels\[0\].strides: expected a list"),
        ({"levels": [{"quantizer": {"kind": "gumbel"}}]}, "'gumbel' is not one of 'vq', 'argmax'"),
        ({"sample_rate": "16k"}, "expected an integer"),
        ({"prior": {"layers": 0}}, "net.layers must be ≥ 1"),
        ({"levels": [{"strides": [1]}]}, "must downsample"),
        ({"levels": []}, "1 to 4 levels"),
        ({"levels": [{"sampling": {"top_p": 1.5}}]}, r"sampling.top_p must be in \(0, 1\], got 1.5"),
        ({"levels": [{"sampling": {"temperature": "hot"}}]}, r"sampling.temperature: expected a number"),
        ({"levels": [{"sampling": {"lpc_bandwidth": None}}]}, r"lpc_bandwidth: expected a number"),
    ],
)
def test_strict_errors_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(StackConfig, data)


def test_derived_properties():
    assert NetConfig(layers=10, cycle=10).receptive_field == 1024
    assert NetConfig(layers=6, cycle=3).dilations == (1, 2, 4, 1, 2, 4)
    assert LevelConfig(strides=(2, 4)).hop == 8
    assert tiny_config(3).hops == (4, 8, 16)
