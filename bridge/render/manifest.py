"""The project manifest on disk: a JSON file plus an append-only journal, so that recording a
render costs the same with 10 entries or 50,000.

``record`` appends the entry as one line to ``wavestack-journal.<G>.jsonl`` and syncs it (a
render is recorded once that line is on disk). Then the journal is folded into ``wavestack.json``
and the REAPER project rewritten (``compact``) while the manifest holds fewer than
``ALWAYS_BELOW`` renders (a fold is then a few milliseconds: after every render, so the files are
always current), and beyond that whenever the last fold is ``COMPACT_RATIO`` times as long ago as
it took (a 50,000-render project: about every 10 s, so folding never takes more than a sixth of
the time whatever the size). A fold moves
appends to generation G+1 first, writes the JSON atomically with ``"compacted": G``, then deletes
journal G. A crash between any two
steps loses nothing and doubles nothing: readers take the JSON plus every journal newer than its
``compacted`` generation, and skip a torn last line (that render never finished recording).
Writers release (``Claim.release``) with a final compaction, so the files a DAW or a script
reads are whole again when the writer stops.

Reads are cached per process, keyed by the files' sizes and times, so a server answering
``/track/takes`` does not parse the whole manifest each time. One writer per project (``Claim``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST = "wavestack.json"
FORMAT = "wavestack-project"
JOURNAL = re.compile(r"^wavestack-journal\.(\d+)\.jsonl$")
COMPACT_RATIO = 5.0
ALWAYS_BELOW = 2000
_lock = threading.RLock()
log = logging.getLogger("wavestack.project")


class ManifestError(ValueError):
    """A manifest that cannot be read."""


@dataclass
class _State:
    """What this process knows of one project's manifest."""
    key: tuple = ()  # the files' (name, size, mtime) when ``data`` was read
    data: dict[str, Any] = field(default_factory=dict)
    generation: int = 0  # the journal that appends go to
    last_compact: float = 0.0  # monotonic
    compact_took: float = 0.0
    pending: bool = False  # appended since the last compaction
    takes: dict[str, int] | None = None  # highest take per stem, kept as renders are appended


_STATES: dict[str, _State] = {}


def _journals(root: Path) -> list[tuple[int, Path]]:
    try:
        names = os.listdir(root)
    except OSError:
        return []
    return sorted((int(m.group(1)), root / n) for n in names if (m := JOURNAL.match(n)))


def _key(root: Path) -> tuple:
    out = []
    for path in [root / MANIFEST, *(p for _, p in _journals(root))]:
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        out.append((path.name, st.st_size, st.st_mtime_ns))
    return tuple(out)


def _read_files(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ManifestError(f"{path} is unreadable ({exc}); move it away to start a new one") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ManifestError(f"{path} is not a wavestack manifest")
    else:
        data = {"format": FORMAT, "version": 1, "renders": []}
    done = int(data.get("compacted", 0))
    for generation, journal in _journals(root):
        if generation <= done:
            continue  # folded into the JSON already (a compaction that stopped before deleting it)
        lines = journal.read_bytes().split(b"\n")
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                data["renders"].append(json.loads(line))
            except json.JSONDecodeError:
                if i < len(lines) - 1 and any(rest.strip() for rest in lines[i + 1:]):
                    raise ManifestError(f"{journal} is damaged at line {i + 1}") from None
                # a torn last line: the process died while recording that render; it was not recorded
    return data


def read(root: Path) -> dict[str, Any]:
    """The manifest: every recorded render, oldest first. Shared and cached: do not modify it."""
    with _lock:
        state = _STATES.setdefault(str(root), _State())
        key = _key(root)
        if key != state.key or not state.data:
            state.data = _read_files(root)
            state.key = key
            state.takes = None
            # this process appends to a journal of its own: a killed writer's torn line stays last in its file
            newest = max([g for g, _ in _journals(root)] + [int(state.data.get("compacted", 0))])
            state.generation = newest + 1
        return state.data


def highest_takes(root: Path) -> dict[str, int]:
    """The highest take number recorded for each stem (``01_keys`` for ``Audio/01_keys_take3.wav``)."""
    with _lock:
        read(root)
        state = _STATES[str(root)]
        if state.takes is None:
            state.takes = {}
            for render in state.data["renders"]:
                _count_takes(state.takes, render)
        return state.takes


_TAKE = re.compile(r"^(.*)_take(\d+)\.wav$")


def _count_takes(takes: dict[str, int], render: dict[str, Any]) -> None:
    for f in render.get("files", []):
        if m := _TAKE.match(f["path"].rsplit("/", 1)[-1]):
            takes[m.group(1)] = max(takes.get(m.group(1), 0), int(m.group(2)))


def record(root: Path, entry: dict[str, Any], rewrite: Callable[[dict[str, Any]], None]) -> None:
    """Append ``entry``; compact (``rewrite`` makes the files derived from the manifest) when due."""
    with _lock:
        data = read(root)
        state = _STATES[str(root)]
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        path = root / f"wavestack-journal.{state.generation}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        data["renders"].append(entry)
        if state.takes is not None:
            _count_takes(state.takes, entry)
        state.key = _key(root)
        state.pending = True
        elapsed = time.monotonic() - state.last_compact
        if len(data["renders"]) < ALWAYS_BELOW or elapsed >= COMPACT_RATIO * state.compact_took:
            try:
                compact(root, rewrite)
            except OSError as exc:  # the render is recorded (its journal line is on disk); fold it later
                state.last_compact = time.monotonic()
                log.warning("could not rewrite %s (%s); the render is recorded in the journal beside it",
                            root / MANIFEST, exc.strerror or exc)


def forget(root: Path) -> None:
    """Drop this process's cached copy of ``root``'s manifest (its writer has let go of it)."""
    with _lock:
        _STATES.pop(str(root), None)


def compact(root: Path, rewrite: Callable[[dict[str, Any]], None]) -> None:
    """Fold the journals into the JSON and call ``rewrite(manifest)``; a no-op when nothing is new."""
    from engine.wavfile import atomic_output

    with _lock:
        data = read(root)
        state = _STATES[str(root)]
        journals = _journals(root)
        if not state.pending and not [g for g, _ in journals if g > int(data.get("compacted", 0))]:
            return
        started = time.monotonic()
        folded = state.generation
        state.generation += 1  # from here on, appends go to a new journal
        data["compacted"] = folded
        with atomic_output(root / MANIFEST) as fh:
            fh.write((json.dumps(data, indent=1) + "\n").encode())
        rewrite(data)
        for generation, journal in journals:
            if generation <= folded:
                journal.unlink(missing_ok=True)
        state.key = _key(root)
        state.pending = False
        state.last_compact = time.monotonic()
        state.compact_took = state.last_compact - started
