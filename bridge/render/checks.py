"""The checks of a value that load something — a model's manifest, effect plugins, a file — named
by the protocol table (``Arg.check``). They run before a value is set or a render is queued, off
the OSC receive thread; parsing a session (``bridge.session``) only checks types and shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge.protocol import Arg
from bridge.session import Session


def check_model(name: str) -> str:
    """The model name, if such a bundle is installed."""
    from engine.catalog import resolve

    resolve(name)  # unknown models are refused when set, not at render time
    return name


def check_fx(chain: Any) -> list[dict[str, Any]]:
    """The effects chain, checked by building it."""
    from bridge.render.fx import parse_chain

    return parse_chain(chain)


def check_file(path: str) -> str:
    """The path, if it is a file (or empty)."""
    if path and not Path(path).is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    return path


CHECKS: dict[str, Callable[[Any], Any]] = {"model": check_model, "fx": check_fx, "file": check_file}


def checked(arg: Arg, value: Any) -> Any:
    """``value`` after the table's extra check for ``arg`` (which may load a plugin or read a file)."""
    return CHECKS[arg.check](value) if arg.check else value


def check_session(session: Session) -> Session:
    """A parsed session with its effects chains checked by building them (plugins load here)."""
    session.master_fx = check_fx(session.master_fx)
    for track in session.tracks:
        track.fx = check_fx(track.fx)
    return session
