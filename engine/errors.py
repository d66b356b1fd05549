"""Exceptions raised where bad input enters the engine; messages say what is allowed."""

from __future__ import annotations


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""


class ConfigError(EngineError, ValueError):
    """A configuration has an unknown key, a missing key or a value of the wrong type or range."""


class ParameterError(EngineError, ValueError):
    """A sampling parameter or input array is outside what the engine accepts."""


class BundleError(EngineError):
    """A model bundle is missing, corrupt, or not one this version can read."""


class ModelNotFoundError(BundleError, LookupError):
    """No bundle with the requested name is installed."""


class Cancelled(EngineError):
    """Generation was stopped by the caller's cancellation check."""
