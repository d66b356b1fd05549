import pytest

from engine.config import LevelConfig, NetConfig, StackConfig, from_dict, to_dict
from engine.errors import ConfigError
from tests.tiny import tiny_config


def test_round_trip():
    cfg = tiny_config(3)
    assert from_dict(StackConfig, to_dict(cfg)) == cfg


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
