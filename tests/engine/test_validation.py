import numpy as np
import pytest
import torch

from engine.errors import ParameterError


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seconds": 0}, "seconds must be in"),
        ({"seconds": -1}, "seconds must be in"),
        ({"seconds": 1e9}, "seconds must be in"),
        ({"seconds": float("nan")}, "seconds must be finite"),
        ({"seconds": "4"}, "seconds must be a number"),
        ({"temperature": 0}, "temperature must be in"),
        ({"temperature": -0.5}, "temperature must be in"),
        ({"top_p": 0}, r"top_p must be in \(0, 1\]"),
        ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
        ({"batch": 0}, "batch must be in"),
        ({"batch": 1.5}, "batch must be an integer"),
        ({"seed": -1}, "seed must be an integer"),
        ({"seed": 1.0}, "seed must be an integer"),
    ],
)
def test_bad_sampling_parameters_name_the_parameter_and_range(stack, kwargs, message):
    args = {"seconds": 0.01, "seed": 1} | kwargs
    with pytest.raises(ParameterError, match=message):
        stack.sample(args.pop("seconds"), **args)


@pytest.mark.parametrize(
    ("primer", "message"),
    [
        (np.zeros((400, 2), np.float32), "looks like \\(samples, channels\\)"),
        (np.zeros((2, 3, 100), np.float32), "must be 1-D"),
        (np.full(100, 2.0, np.float32), "must lie in \\[-1, 1\\]"),
        (np.array([0.0, np.nan] * 50, np.float32), "NaN"),
        (np.zeros(100, np.int16), "float audio"),
        ([0.0] * 100, "numpy array or torch tensor"),
        (np.zeros(0, np.float32), "at least 1 samples"),
    ],
)
def test_bad_primers_are_refused_clearly(stack, primer, message):
    with pytest.raises(ParameterError, match=message):
        stack.continue_(primer, 0.01, seed=1)


def test_primer_at_the_wrong_rate_is_refused(stack):
    with pytest.raises(ParameterError, match="44100 Hz but this model runs at 8000 Hz"):
        stack.continue_(np.zeros(100, np.float32), 0.01, seed=1, sample_rate=44100)


def test_vary_level_must_exist(stack):
    audio = np.zeros(160, np.float32)
    with pytest.raises(ParameterError, match=r"level must be in \[1, 2\]"):
        stack.vary(audio, 3, seed=1)


def test_encode_needs_a_whole_top_frame(stack):
    with pytest.raises(ParameterError, match="at least 8 samples"):
        stack.encode(np.zeros(5, np.float32))


def test_decode_refuses_out_of_range_codes(stack):
    with pytest.raises(ParameterError, match=r"codes must lie in \[0, 15\]"):
        stack.decode(torch.tensor([[0, 99]]), 1, seed=1)


def test_batch_mismatch_is_refused(stack):
    with pytest.raises(ParameterError, match="2 rows but batch=3"):
        stack.vary(np.zeros((2, 160), np.float32), 1, seed=1, batch=3)
