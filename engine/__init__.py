"""wavestack engine: hierarchical autoregressive discrete autoencoders for raw audio.

>>> from engine import load_bundle
>>> bundle = load_bundle("default")
>>> audio = bundle.stack.sample(0.05, seed=1)  # float32 (batch, samples) at bundle.sample_rate

Exports load on first use: ``engine.errors``, ``engine.catalog`` (finding bundles, reading their
manifests) and ``engine.wavfile`` (atomic files) import without torch; the models import it.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Bundle": "bundle", "load_bundle": "bundle", "save_bundle": "bundle",
    "installed_models": "catalog", "user_models_dir": "catalog",
    "LevelConfig": "config", "NetConfig": "config", "QuantizerConfig": "config", "StackConfig": "config",
    "BundleError": "errors", "Cancelled": "errors", "ConfigError": "errors", "EngineError": "errors",
    "ModelNotFoundError": "errors", "ParameterError": "errors",
    "Level": "level", "ArgmaxQuantizer": "quantizers", "VectorQuantizer": "quantizers",
    "Stack": "stack", "WaveNet": "wavenet",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
