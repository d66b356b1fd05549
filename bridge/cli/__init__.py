"""The `wavestack` command line."""
