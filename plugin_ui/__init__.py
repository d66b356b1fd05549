"""wavestack control window (PySide6); talks to the server only over OSC."""
