"""Exceptions of the training package; like the engine's, their messages say what to do."""

from __future__ import annotations

from engine.errors import EngineError


class TrainingError(EngineError):
    """Base class of every error training raises on purpose."""


class CorpusError(TrainingError):
    """The corpus cannot be built: a missing tool, soundfont or score."""


class DataError(TrainingError):
    """A data folder holds no usable audio, or too little for the requested segments."""


class RunError(TrainingError):
    """A run directory is missing, unfinished, or was started with another configuration."""
