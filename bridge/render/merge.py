"""``wavestack merge``: gather the renders of several project folders (batch shards) into one.

Every stem is copied under the next free take number of the target and its manifest entry is
recorded there (the REAPER project follows). A render already in the target with the same key and
the same audio is skipped, so merging twice changes nothing; the same key with other audio is a
conflict, and nothing at all is copied then.
"""

from __future__ import annotations

import copy
import hashlib
import re
from pathlib import Path
from typing import Any

from bridge.render.project import MANIFEST, Claim, Project, ProjectError
from bridge.render.takes import TakeState, states

_STEM = re.compile(r"^(?P<stem>.+)_take\d+\.wav$")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def merge(target: str | Path, sources: list[str | Path]) -> list[Path]:
    """Copy the sources' renders into ``target``; returns the files written."""
    for source in sources:
        if not (Path(source).expanduser() / MANIFEST).is_file():
            raise ProjectError(f"{source} is not a wavestack project (no {MANIFEST}); nothing was merged")
    out = Project(target)
    claim = Claim(out.root)
    try:
        return _merge(out, sources)
    finally:
        claim.release()


def _merge(out: Project, sources: list[str | Path]) -> list[Path]:
    known: dict[str, str] = {}  # batch key → sha256 of its audio, in the target
    for render in out.read_manifest()["renders"]:
        if render.get("batch_key"):
            known[render["batch_key"]] = _digest(out.root / render["files"][0]["path"])
    plan: list[tuple[Project, dict[str, Any]]] = []
    problems = []
    for source in map(Project, sources):
        if source.root == out.root:
            raise ProjectError(f"{source.root} is the target itself")
        renders = source.read_manifest()["renders"]
        done = states(renders)
        for render in renders:
            if render.get("kind") != "track":
                continue
            if any(done.get((f["track"], f["take"]), TakeState()).moved_to for f in render["files"]):
                continue  # deleted there: in its Audio/.trash
            key = render.get("batch_key")
            digest = _digest(source.root / render["files"][0]["path"])
            if key and key in known:
                if known[key] != digest:
                    problems.append(f"{source.root}: {render['files'][0]['path']} renders key {key[:12]}… "
                                    "differently from a take already merged")
                continue
            if key:
                known[key] = digest
            plan.append((source, render))
    if problems:
        raise ProjectError("conflicting takes, nothing merged:\n  " + "\n  ".join(problems))
    written = []
    for source, render in plan:
        written.extend(_copy(source, out, render))
    return written


def _copy(source: Project, out: Project, render: dict[str, Any]) -> list[Path]:
    from engine.wavfile import atomic_output

    entry = copy.deepcopy(render)
    written = []
    for f in entry["files"]:
        data = (source.root / f["path"]).read_bytes()
        match = _STEM.match(Path(f["path"]).name)
        stem = match.group("stem") if match else Path(f["path"]).stem

        def write(path: Path, data: bytes = data) -> None:
            with atomic_output(path, overwrite=False) as fh:
                fh.write(data)

        path, take = out.write_new(stem, write)
        f.update(path=str(path.relative_to(out.root)), take=take)
        written.append(path)
    entry["merged_from"] = str(source.root)
    session = entry.get("session", {})
    out.record(entry, session.get("tempo", 120.0), tuple(session.get("meter", (4, 4))))
    return written
