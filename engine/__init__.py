"""wavestack engine: hierarchical autoregressive discrete autoencoders for raw audio.

>>> from engine import load_bundle
>>> bundle = load_bundle("default")
>>> audio = bundle.stack.sample(0.05, seed=1)  # float32 (batch, samples) at bundle.sample_rate
"""

from .bundle import Bundle, installed_models, load_bundle, save_bundle, user_models_dir
from .config import LevelConfig, NetConfig, QuantizerConfig, StackConfig
from .errors import (
    BundleError,
    Cancelled,
    ConfigError,
    EngineError,
    ModelNotFoundError,
    ParameterError,
)
from .level import Level
from .quantizers import ArgmaxQuantizer, VectorQuantizer
from .stack import Stack
from .wavenet import WaveNet

__all__ = [
    "ArgmaxQuantizer", "Bundle", "BundleError", "Cancelled", "ConfigError", "EngineError",
    "Level", "LevelConfig", "ModelNotFoundError", "NetConfig", "ParameterError",
    "QuantizerConfig", "Stack", "StackConfig", "VectorQuantizer", "WaveNet",
    "installed_models", "load_bundle", "save_bundle", "user_models_dir",
]
