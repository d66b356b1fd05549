"""wavestack bridge: everything between the engine and a DAW (CLI, OSC server, rendering)."""

__version__ = "0.1.0"
