"""Effects chains as data, checked before any audio is generated, run with pedalboard.

A chain is a list of steps, as JSON (over OSC) or TOML (batch specs)::

    [{"plugin": "Compressor", "threshold_db": -18, "ratio": 3},
     {"vst3": "/usr/lib/vst3/ZamDelay.vst3", "params": {"time_ms": 250}}]

Built-in steps name a pedalboard effect class; VST3 steps give a path (inside a plugin folder) and
parameters by the names pedalboard lists for that plugin, and run in the plugin host, a separate
process (``bridge.render.pluginhost``). Any step may say ``"bypass": true``: it is checked and kept in
the chain (and the manifest) but not run. Unknown plugins, unknown parameters and out-of-range values are
errors that say what is allowed. Effect tails (reverb, delay) are rendered, not cut.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import numpy as np

from bridge.protocol import ProtocolError, chain_steps
from bridge.render import pluginhost
from bridge.render.pluginhost import PluginFailed

TAIL_SECONDS = 10.0  # silence fed after the audio so reverbs and delays can ring out
TAIL_FLOOR = 1e-5  # the tail ends where the output stays below this (-100 dBFS)
NOT_EFFECTS = {"Plugin", "Pedalboard", "Chain", "Mix", "PluginContainer", "ExternalPlugin", "VST3Plugin",
               "Convolution", "Resample", "GSMFullRateCompressor", "MP3Compressor", "IIRFilter"}
# Ranges the control window offers for built-in parameters, by name, else by name ending;
# pedalboard still checks every value it is given.
UI_RANGES: tuple[tuple[str, float, float], ...] = (
    ("feedback", -1.0, 1.0), ("mix", 0.0, 1.0), ("depth", 0.0, 1.0), ("room_size", 0.0, 1.0),
    ("damping", 0.0, 1.0), ("wet_level", 0.0, 1.0), ("dry_level", 0.0, 1.0), ("width", 0.0, 1.0),
    ("freeze_mode", 0.0, 1.0), ("resonance", 0.0, 1.0), ("q", 0.1, 20.0), ("ratio", 1.0, 100.0),
    ("semitones", -72.0, 72.0), ("bit_depth", 1.0, 32.0), ("delay_seconds", 0.0, 10.0),
    ("drive", 1.0, 100.0), ("rate_hz", 0.01, 100.0), ("_db", -100.0, 48.0), ("_ms", 0.0, 5000.0),
    ("_hz", 1.0, 20000.0),
)


class FxError(ValueError):
    """A chain that cannot be built; the message names the step and what is allowed."""


def builtin_names() -> list[str]:
    """The pedalboard effects a chain may name."""
    import pedalboard

    return sorted(
        n for n in dir(pedalboard)
        if not n.startswith("_") and n not in NOT_EFFECTS
        and isinstance(getattr(pedalboard, n), type) and issubclass(getattr(pedalboard, n), pedalboard.Plugin)
    )


def catalog() -> dict[str, dict[str, dict[str, Any]]]:
    """Every built-in effect with its parameters: {plugin: {parameter: {default[, min, max]}}}.

    Enum-valued parameters (LadderFilter.mode) have no JSON form and are left out.
    """
    import pedalboard

    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name in builtin_names():
        plugin = getattr(pedalboard, name)()
        params: dict[str, dict[str, Any]] = {}
        for key in _settable(plugin):
            value = getattr(plugin, key)
            if type(value) is bool:
                params[key] = {"default": value}
            elif type(value) in (int, float):
                lo, hi = value_range(key)
                params[key] = {"default": round(float(value), 6), "min": lo, "max": hi}
        out[name] = params
    return out


def value_range(key: str) -> tuple[float, float]:
    """The range a built-in parameter accepts (and the window offers), by its name."""
    exact = next(((lo, hi) for k, lo, hi in UI_RANGES if key == k), None)
    return exact or next(((lo, hi) for k, lo, hi in UI_RANGES if key.endswith(k)), (-1e6, 1e6))


def _settable(plugin: Any) -> list[str]:
    return sorted(a for a in dir(type(plugin)) if isinstance(getattr(type(plugin), a, None), property)
                  and not a.startswith("_") and a not in ("is_effect", "is_instrument"))


def parse_chain(chain: str | list[Any]) -> list[dict[str, Any]]:
    """A chain from JSON text or a list; checks its shape and builds it once to check its values."""
    try:
        steps = chain_steps(chain)
    except ProtocolError as exc:
        raise FxError(str(exc)) from None
    build_board(steps)
    return steps


_VST3_PARAMETERS: dict[tuple[str, int, int], dict[str, tuple[Any, Any]]] = {}
_VST3_LOCK = threading.Lock()


def vst3_parameters(path: str) -> dict[str, tuple[Any, Any]]:
    """A VST3 plugin's parameters and their (min, max), scanned once per plugin version by the host."""
    key = pluginhost.version_of(path)
    with _VST3_LOCK:
        if key not in _VST3_PARAMETERS:
            _VST3_PARAMETERS[key] = pluginhost.HOST.scan(path)
        return _VST3_PARAMETERS[key]


def _check_vst3(index: int, step: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A VST3 step's path and parameters, checked against the plugin's scan (made once, then remembered)."""
    where = f"fx step {index}"
    path = step.pop("vst3")
    params = step.pop("params", {})
    if step:
        raise FxError(f"{where}: unknown key(s) {', '.join(sorted(step))}; a VST3 step has vst3, params, "
                      "bypass")
    if not isinstance(path, str) or not path.endswith(".vst3") or not Path(path).exists():
        raise FxError(f"{where}: VST3 plugin not found: {path!r} (give the path of a .vst3 bundle)")
    if not pluginhost.allowed(path):
        folders = ", ".join(str(f) for f in pluginhost.plugin_folders())
        raise FxError(f"{where}: {path} is not in a plugin folder ({folders}); "
                      "add its folder with --plugin-path")
    if not isinstance(params, dict):
        raise FxError(f"{where}: params must be a table of parameter names to values")
    try:
        known = vst3_parameters(path)
    except (PluginFailed, RuntimeError) as exc:
        raise FxError(f"{where}: {exc}") from None
    for name, value in params.items():
        if name not in known:
            raise FxError(f"{where} ({Path(path).stem}): unknown parameter {name!r}; parameters: "
                          f"{', '.join(known)}")
        lo, hi = known[name]
        _check_range(value, lo, hi, f"{where} ({Path(path).stem}): {name}")
    return path, params


class HostedPlugin:
    """A VST3 step of a board: run by the plugin host, with the parameters the step gives."""

    def __init__(self, path: str, params: dict[str, Any]) -> None:
        self.path, self.params = path, params

    def reset(self) -> None:
        """Every request to the host starts from a reset plugin."""

    def process(self, audio: np.ndarray, sample_rate: int, reset: bool = True) -> np.ndarray:
        """``audio`` (channels, frames) through a fresh instance of the plugin, in the host."""
        return pluginhost.HOST.process(self.path, self.params, audio, sample_rate)


def build_board(chain: list[dict[str, Any]]) -> list[Any]:
    """Instantiate every step that is not bypassed (bypassed ones are checked all the same); raises
    FxError on the first bad one. VST3 steps are checked against their scan, run later by the host."""
    board = []
    for i, step in enumerate(chain):
        step = dict(step)
        bypass = step.pop("bypass", False)
        if not isinstance(bypass, bool):
            raise FxError(f"fx step {i + 1}: bypass must be true or false, got {bypass!r}")
        plugin = _build_step(i + 1, step)
        if not bypass:
            board.append(plugin)
    return board


def _build_step(index: int, step: dict[str, Any]) -> Any:
    import pedalboard

    where = f"fx step {index}"
    if "vst3" in step:
        return HostedPlugin(*_check_vst3(index, step))
    name = step.pop("plugin", None)
    allowed = builtin_names()
    if name not in allowed:
        raise FxError(f"{where}: unknown plugin {name!r}; built-ins: {', '.join(allowed)} (or a vst3 path)")
    plugin = getattr(pedalboard, name)()
    settable = _settable(plugin)
    for key, value in step.items():
        if key not in settable:
            raise FxError(f"{where} ({name}): unknown parameter {key!r}; parameters: {', '.join(settable)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise FxError(f"{where} ({name}): {key} must be a finite number, got {value!r}")
        if isinstance(value, int | float) and not isinstance(value, bool):
            lo, hi = value_range(key)
            if not lo <= value <= hi:
                raise FxError(f"{where} ({name}): {key} must be in [{lo:g}, {hi:g}], got {value!r}")
        try:
            setattr(plugin, key, value)
        except (TypeError, ValueError) as exc:
            text = str(exc).splitlines()[0] or "bad value"
            raise FxError(f"{where} ({name}): {key}={value!r} refused: {text}") from None
    return plugin


def _check_range(value: Any, lo: Any, hi: Any, what: str) -> None:
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if numeric and (not math.isfinite(value) or (lo is not None and not lo <= value <= hi)):
        raise FxError(f"{what} must be in [{lo}, {hi}], got {value!r}")


def apply_chain(plugins: list[Any], audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Run ``audio`` (channels, frames) through the plugins, keeping the tail; returns (channels, frames').

    A plugin that cannot take the current channel count is fed mono (mixed down) or stereo
    (duplicated), whichever it accepts.
    """
    if not plugins:
        return audio
    frames = audio.shape[1]
    x = np.concatenate([audio, np.zeros((audio.shape[0], int(TAIL_SECONDS * sample_rate)), np.float32)], 1)
    for plugin in plugins:
        plugin.reset()
        x = _process(plugin, x, sample_rate)
    loud = np.flatnonzero(np.abs(x).max(axis=0) > TAIL_FLOOR)
    end = max(frames, int(loud[-1]) + 1 if loud.size else 0)
    return np.ascontiguousarray(x[:, :end], dtype=np.float32)


def _process(plugin: Any, x: np.ndarray, sample_rate: int) -> np.ndarray:
    try:
        return plugin.process(x, sample_rate, reset=True)
    except PluginFailed as exc:
        raise FxError(str(exc)) from None
    except (ValueError, RuntimeError) as first:
        other = np.repeat(x, 2, axis=0) if x.shape[0] == 1 else x.mean(axis=0, keepdims=True)
        try:
            return plugin.process(other.astype(np.float32), sample_rate, reset=True)
        except PluginFailed as exc:
            raise FxError(str(exc)) from None
        except (ValueError, RuntimeError):
            name = Path(plugin.path).stem if isinstance(plugin, HostedPlugin) else type(plugin).__name__
            raise FxError(f"{name} cannot process this audio: {first}") from None
