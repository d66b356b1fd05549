"""The DAW project folder: stems under ``Audio/``, a render manifest, and a REAPER project.

Layout::

    <project>/Audio/01_bass_take1.wav   stems: <track number>_<track>_take<k>.wav (BWF, positioned)
    <project>/Audio/mix_take1.wav       the mix of a "generate all"
    <project>/wavestack.json            manifest: every render, enough to render it again
    <project>/wavestack.rpp             REAPER project: one track per stem at its position

Every file appears atomically; an existing file is never replaced (a new take number is used);
every path is checked to stay inside the project folder.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bridge.render import manifest
from bridge.render.manifest import MANIFEST

RPP = "wavestack.rpp"
AUDIO = "Audio"
SESSION_FILE = "wavestack-session.json"  # the server keeps its session here
_TAKE = re.compile(r"_take(\d+)\.wav$")
log = logging.getLogger("wavestack.project")


class ProjectError(ValueError):
    """A project folder that cannot be used, or a path that would leave it."""


def slug(name: str) -> str:
    """A track name as a file name part."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "track"


CLAIM = ".wavestack-in-use"  # held (flock) by the one server or batch writing the project
UNRECORDED = "Unrecorded"  # takes a killed writer left in Audio/ without a manifest entry go here


class Claim:
    """This process's hold on a project folder: while it lives no other wavestack writes there.
    Taking it removes the ``.part`` files a killed writer left (nobody else can be writing them) and
    sets aside the takes it wrote but did not record (``set_aside_unrecorded``); ``set_aside`` lists
    them, for the claimant to report."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root, self._fh = root, open(root / CLAIM, "a+")  # noqa: SIM115 (held for the claim's life)
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._fh.seek(0)
            holder = self._fh.read().strip() or "another process"
            self._fh.close()
            raise ProjectError(f"{root} is in use by another wavestack ({holder}); stop it or choose "
                               "another project folder") from None
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(f"pid {os.getpid()}\n")
        self._fh.flush()
        for leftover in [*root.glob(".*.part"), *(root / AUDIO).glob(".*.part")]:
            leftover.unlink(missing_ok=True)
        self.set_aside = set_aside_unrecorded(root)
        Project(root).compact()  # a killed writer's journal folded in, its REAPER project current

    def release(self) -> None:
        """Bring the manifest files up to date, then let another wavestack write the project."""
        if not self._fh.closed:
            if self.root.is_dir():
                Project(self.root).compact()
            # a server that moves on keeps no copy of every project it held
            manifest.forget(self.root.expanduser().resolve())
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()


def set_aside_unrecorded(root: Path) -> list[Path]:
    """Move the takes wavestack wrote into ``Audio/`` but never recorded in the manifest (killed
    between the two) to ``Unrecorded/``, so the DAW's view of ``Audio/`` and the manifest agree
    again and nothing is lost; other files are left alone. Returns the new paths."""
    from bridge.render.bwf import read_bext

    audio = root / AUDIO
    try:
        manifest = Project(root).read_manifest()
    except ProjectError:
        return []  # an unreadable manifest is reported where it is used; nothing is moved blind
    recorded = {f["path"] for r in manifest["renders"] for f in r.get("files", [])}
    moved = []
    for path in sorted(audio.glob("*_take*.wav")):
        if f"{AUDIO}/{path.name}" in recorded or not _TAKE.search(path.name):
            continue
        try:
            if not read_bext(path).description.startswith("wavestack "):
                continue  # not ours
        except (OSError, ValueError):
            continue
        folder = root / UNRECORDED
        folder.mkdir(exist_ok=True)
        target, n = folder / path.name, 1
        while target.exists():
            n += 1
            target = folder / f"{path.stem}.{n}.wav"
        os.replace(path, target)
        moved.append(target)
    return moved


class Project:
    """A DAW project folder: stems under Audio/, the manifest, the REAPER project."""
    def __init__(self, root: str | Path) -> None:
        if not str(root):
            raise ProjectError("no project folder set: send /wavestack/project <folder> or pass --project")
        self.root = Path(root).expanduser().resolve()
        if self.root.exists() and not self.root.is_dir():
            raise ProjectError(f"project folder {self.root} exists and is not a folder")
        try:
            (self.root / AUDIO).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ProjectError(f"cannot create project folder {self.root}: {exc.strerror}") from None

    def inside(self, relative: str | Path) -> Path:
        """``relative`` resolved under the project; refuses anything that would leave it."""
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root):
            raise ProjectError(f"{relative} would be outside the project folder {self.root}")
        return path

    def next_take(self, stem: str) -> int:
        """1 + the highest take of ``stem`` in the manifest (``write_new`` steps over files on disk)."""
        with _manifest_errors():
            return manifest.highest_takes(self.root).get(stem, 0) + 1

    def stem_path(self, stem: str, take: int) -> Path:
        """Where take ``take`` of ``stem`` is written."""
        return self.inside(Path(AUDIO) / f"{stem}_take{take}.wav")

    def write_new(self, stem: str, write: Any) -> tuple[Path, int]:
        """Call ``write(path)`` with the next free take; retries if another writer took it first.
        A project folder that vanished (deleted while rendering) is not made again behind the user."""
        if not (self.root / AUDIO).is_dir():
            if not self.root.is_dir():
                raise ProjectError(f"the project folder {self.root} is gone (deleted while rendering?); "
                                   "nothing was written: open a project folder again")
            (self.root / AUDIO).mkdir()
        take = self.next_take(stem)
        for _ in range(1000):
            path = self.stem_path(stem, take)
            try:
                write(path)
                return path, take
            except FileExistsError:
                take += 1
        raise ProjectError(f"no free take number for {stem}")

    # ------------------------------------------------------------------ manifest
    @property
    def manifest_path(self) -> Path:
        """The manifest's path (its journal lies beside it: see ``bridge.render.manifest``)."""
        return self.root / MANIFEST

    def read_manifest(self) -> dict[str, Any]:
        """The manifest (an empty one if none is written yet); shared and cached: do not modify it."""
        with _manifest_errors():
            return manifest.read(self.root)

    def record(self, render: dict[str, Any], tempo: float, meter: tuple[int, int]) -> None:
        """Record one render (one synced journal line); the JSON and the REAPER project follow
        (see ``bridge.render.manifest``), at the latest when the writer releases the project."""
        with _manifest_errors():  # an unreadable manifest is refused before anything is appended
            manifest.record(self.root, render, lambda data: self._write_rpp(data, tempo, meter))

    def compact(self) -> None:
        """Bring ``wavestack.json`` and ``wavestack.rpp`` up to date with every recorded render."""
        try:
            with _manifest_errors():
                manifest.compact(self.root, self._write_rpp)
        except (ProjectError, OSError) as exc:
            log.warning("%s: the manifest was left as it is: %s", self.root, exc)

    def _write_rpp(self, data: dict[str, Any], tempo: float | None = None,
                   meter: tuple[int, int] | None = None) -> None:
        from engine.wavfile import atomic_output

        if tempo is None or meter is None:  # the latest render's session tells (else REAPER's default)
            last = next((r["session"] for r in reversed(data["renders"]) if "session" in r), {})
            tempo, meter = last.get("tempo", 120.0), tuple(last.get("meter", (4, 4)))
        with atomic_output(self.root / RPP) as fh:
            fh.write(reaper_project(data, tempo, meter).encode())


@contextmanager
def _manifest_errors() -> Iterator[None]:
    """A manifest that cannot be read, as the ProjectError the callers of Project expect."""
    try:
        yield
    except manifest.ManifestError as exc:
        raise ProjectError(str(exc)) from None


def reaper_project(manifest: dict[str, Any], tempo: float, meter: tuple[int, int]) -> str:
    """A minimal REAPER project: a track per stem name, an item per position and length holding
    every take rendered there (oldest first, the newest active), the tempo and the sample rate.

    Mixes are left out: they would double the stems on playback, and so are deleted takes.
    """
    tracks: dict[str, dict[tuple[str, str], list[dict[str, Any]]]] = {}
    rate = 0
    deleted = {(e["track"], e["take"]) for e in manifest["renders"] if e.get("kind") == "trash"}
    for render in manifest["renders"]:
        for f in render.get("files", []) if render.get("kind") == "track" else ():
            if (f["track"], f["take"]) in deleted:  # in Audio/.trash (bridge.render.takes)
                continue
            place = (f"{f['position_seconds']:.6f}", f"{f['seconds']:.6f}")
            tracks.setdefault(f["track"], {}).setdefault(place, []).append(f)
            rate = f.get("sample_rate", rate)
    lines = ["<REAPER_PROJECT 0.1 \"6.0\" 0", f"  TEMPO {tempo:g} {meter[0]} {meter[1]}"]
    if rate:
        lines.append(f"  SAMPLERATE {rate} 0 0")
    for track, items in tracks.items():
        lines += ["  <TRACK", f"    NAME \"{track}\""]
        for (position, length), takes in items.items():
            lines += ["    <ITEM", f"      POSITION {position}", f"      LENGTH {length}"]
            for k, f in enumerate(takes):
                if k:
                    lines.append("      TAKE SEL" if k == len(takes) - 1 else "      TAKE")
                lines += [f"      NAME \"{Path(f['path']).name}\"", "      <SOURCE WAVE",
                          f"        FILE \"{f['path']}\"", "      >"]
            lines.append("    >")
        lines.append("  >")
    lines.append(">")
    return "\n".join(lines) + "\n"
