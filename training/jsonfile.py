"""JSON files that are replaced atomically, so a killed process never leaves half a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.wavfile import atomic_output

from .errors import RunError


def write_json_atomic(path: Path, data: Any) -> None:
    with atomic_output(Path(path)) as fh:
        fh.write((json.dumps(data, indent=1) + "\n").encode())


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RunError(f"cannot read {path}: {exc}") from None
