"""Entry point of ``wavestack-train``."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("wavestack-train: not yet available (corpus/fit/eval/export arrive with the training work)",
          file=sys.stderr)
    return 2
