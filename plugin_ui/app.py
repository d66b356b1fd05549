"""Entry point of ``wavestack-ui``."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("wavestack-ui: not yet available (the control window arrives with the plugin_ui work)",
          file=sys.stderr)
    return 2
