"""A project's takes as its manifest records them, and what a musician does to one: mark it as a
keeper, or delete it — moved to ``Audio/.trash``, never unlinked, and recorded.

Renders are never rewritten: marking and deleting append entries of their own (``kind`` ``take``:
``{"track", "take", "keeper"}``; ``kind`` ``trash``: ``{"track", "take", "path", "moved_to"}``),
which readers fold over the renders (``states``). A take number is never given again, deleted
or not.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.protocol import MIX
from bridge.render.project import AUDIO, Project, ProjectError

TRASH = ".trash"


@dataclass
class TakeState:
    """What was done to one take: marked as a keeper, moved to the trash."""

    keeper: bool = False
    moved_to: str | None = None  # where a deleted take's file went, relative to the project


def states(renders: list[dict[str, Any]]) -> dict[tuple[str, int], TakeState]:
    """(track, take) → what was done to it, from the manifest's entries in order."""
    out: dict[tuple[str, int], TakeState] = {}
    for entry in renders:
        kind = entry.get("kind")
        if kind == "take":
            out.setdefault((entry["track"], entry["take"]), TakeState()).keeper = bool(entry["keeper"])
        elif kind == "trash":
            out.setdefault((entry["track"], entry["take"]), TakeState()).moved_to = entry["moved_to"]
    return out


def listed(project: Project, track: str) -> list[dict[str, Any]]:
    """The track's takes on disk, newest first: path, take, seed, seconds, position, model, keeper
    (``MIX``: the session's mixes, with seed -1 and model "" — a mix has neither)."""
    renders = project.read_manifest()["renders"]
    done = states(renders)
    takes = []
    for render in reversed(renders):
        mine = render.get("kind") == "mix" if track == MIX else \
            render.get("kind") == "track" and render.get("track") == track
        if not mine:
            continue
        for f in render.get("files", []):
            state = done.get((track, f["take"]), TakeState())
            if state.moved_to is not None:
                continue
            takes.append({"path": str(project.root / f["path"]), "take": f["take"],
                          "seed": render.get("seed", -1), "seconds": f["seconds"],
                          "position_seconds": f["position_seconds"], "model": render.get("model", ""),
                          "finished": render.get("finished", ""), "keeper": state.keeper})
    return takes


def _find(project: Project, track: str, take: int) -> dict[str, Any]:
    for t in listed(project, track):
        if t["take"] == take:
            return t
    raise ProjectError(f"track {track} has no take {take} (see /wavestack/track/takes {track})")


def keep(project: Project, track: str, take: int, keeper: bool, tempo: float, meter: tuple[int, int]) -> None:
    """Mark (or unmark) take ``take`` of ``track`` as a keeper."""
    _find(project, track, take)
    project.record({"kind": "take", "track": track, "take": take, "keeper": keeper,
                    "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, tempo, meter)


def trash(project: Project, track: str, take: int, tempo: float, meter: tuple[int, int]) -> Path:
    """Move take ``take`` of ``track`` to ``Audio/.trash`` (a keeper is refused); returns where it went."""
    found = _find(project, track, take)
    if found["keeper"]:
        raise ProjectError(f"take {take} of {track} is a keeper: unmark it before deleting it")
    source = Path(found["path"])
    folder = project.inside(Path(AUDIO) / TRASH)
    folder.mkdir(exist_ok=True)
    target = folder / source.name
    for n in range(2, 1000):
        if not target.exists():
            break
        target = folder / f"{source.stem}.{n}{source.suffix}"  # never over an earlier deleted file
    else:
        raise ProjectError(f"{folder} holds too many files named {source.name}")
    try:
        os.link(source, target)  # the file is in the trash before the take's name goes
        source.unlink()
    except FileNotFoundError:
        raise ProjectError(f"take {take} of {track} is not on disk any more ({source})") from None
    except OSError:  # no hard links here (another file system): a rename that refuses to replace
        if target.exists():
            raise
        os.rename(source, target)
    try:
        project.record({"kind": "trash", "track": track, "take": take,
                        "path": str(source.relative_to(project.root)),
                        "moved_to": str(target.relative_to(project.root)),
                        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, tempo, meter)
    except BaseException:  # not recorded: the take goes back where the manifest says it is
        os.rename(target, source)
        raise
    return target
