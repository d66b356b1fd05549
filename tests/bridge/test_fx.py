from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bridge.render.fx import FxError, apply_chain, build_board, parse_chain

VST3 = Path("/usr/lib/vst3")
needs_zam = pytest.mark.skipif(not (VST3 / "ZamCompX2.vst3").exists(),
                               reason="Debian zam-plugins is not installed (apt-get install zam-plugins)")


def click(rate: int = 16000, seconds: float = 0.5) -> np.ndarray:
    audio = np.zeros((1, int(rate * seconds)), np.float32)
    audio[0, :64] = 0.8
    return audio


@pytest.mark.parametrize(
    ("chain", "message"),
    [
        ('[{"plugin": "Reverbb"}]', "unknown plugin 'Reverbb'; built-ins: Bitcrush"),
        ('[{"plugin": "Reverb", "room": 1}]', "unknown parameter 'room'; parameters: damping"),
        ('[{"plugin": "Reverb", "room_size": 3}]', "room_size must be in [0, 1], got 3"),
        ('[{"plugin": "Gain", "gain_db": 1e30}]', "gain_db must be in [-100, 48], got 1e"),
        ('[{"plugin": "Gain", "gain_db": "loud"}]', "gain_db='loud' refused"),
        ('[{"vst3": "/nowhere/X.vst3"}]', "VST3 plugin not found"),
        ('{"plugin": "Reverb"}', "must be a list"),
        ("[{", "not valid JSON"),
        ('[{"plugin": "Reverb", "bypass": "yes"}]', "bypass must be true or false"),
        ('[{"plugin": "Reverb", "room_size": 3, "bypass": true}]', "room_size must be in [0, 1], got 3"),
    ],
)
def test_bad_chains_are_refused_before_any_audio(chain, message):
    with pytest.raises(FxError, match=message.replace("[", r"\[").replace("(", r"\(")):
        parse_chain(chain)


def test_a_bypassed_step_is_kept_in_the_chain_but_not_run():
    chain = parse_chain('[{"plugin": "Gain", "gain_db": -12, "bypass": true}, '
                        '{"plugin": "Gain", "gain_db": 6}]')
    assert chain[0]["bypass"] is True  # kept as given: the manifest records it
    out = apply_chain(build_board(chain), click(), 16000)
    assert np.abs(out).max() == pytest.approx(0.8 * 10 ** (6 / 20), rel=1e-3)  # only the +6 dB ran


def test_tails_are_kept_not_cut():
    audio = click()
    echo = [{"plugin": "Delay", "delay_seconds": 0.8, "feedback": 0.0, "mix": 0.5}]
    delayed = apply_chain(build_board(echo), audio, 16000)
    assert audio.shape[1] < int(0.8 * 16000)  # the echo comes after the input has ended …
    assert delayed.shape[1] >= int(0.8 * 16000) + 64  # … and is kept whole
    assert np.abs(delayed[:, int(0.8 * 16000):int(0.8 * 16000) + 64]).max() > 0.1  # the echo is there


def test_an_empty_chain_returns_the_audio_untouched():
    audio = click()
    assert apply_chain(build_board(parse_chain("[]")), audio, 16000) is audio


@needs_zam
def test_vst3_plugins_take_parameters_by_name_with_ranges():
    with pytest.raises(FxError, match=r"ratio must be in \[1.0, 20.0\], got 300"):
        parse_chain([{"vst3": str(VST3 / "ZamCompX2.vst3"), "params": {"ratio": 300}}])
    with pytest.raises(FxError, match="unknown parameter 'ratioo'"):
        parse_chain([{"vst3": str(VST3 / "ZamCompX2.vst3"), "params": {"ratioo": 3}}])
    chain = parse_chain(json.dumps([
        {"vst3": str(VST3 / "ZamCompX2.vst3"), "params": {"ratio": 4, "threshold_db": -20}},
        {"vst3": str(VST3 / "ZamDelay.vst3"), "params": {"time_ms": 200}},
    ]))
    out = apply_chain(build_board(chain), click(48000), 48000)
    assert np.isfinite(out).all() and out.shape[1] >= 24000 and np.abs(out).max() > 0.01


@needs_zam
def test_a_plugin_leaves_the_threads_float_mode_as_it_was():
    # DPF plugins switch the loading thread to flush denormals to zero; renders on that thread
    # (the server's job thread) would then round differently
    def subnormals_survive() -> bool:
        return bool((np.array([1e-310]) * 1.0)[0] != 0.0)

    assert subnormals_survive()
    board = build_board([{"vst3": str(VST3 / "ZamDelay.vst3"), "params": {"time_ms": 50}}])
    assert subnormals_survive()
    apply_chain(board, np.zeros((1, 1000), np.float32), 44100)
    assert subnormals_survive()
