"""Discrete bottlenecks: EMA vector quantisation and the AMAE argmax quantiser."""

from .argmax import ArgmaxQuantizer
from .common import QuantizerOutput, code_stats
from .vq import VectorQuantizer

__all__ = ["ArgmaxQuantizer", "QuantizerOutput", "VectorQuantizer", "code_stats"]
