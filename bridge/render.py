"""Render tracks of a session into its project folder — the one code path of the server's jobs,
``wavestack render`` and batch rendering.

A track: generate with the engine at the model's rate → resample to the session rate (soxr) →
the track's effects chain (tails kept) → track gain → BWF stem at its position. "Generate all"
renders every track, then mixes the stems at their positions through the master chain.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from . import __version__
from .bwf import write_bwf
from .fx import apply_chain, build_board
from .project import Project, slug
from .session import Session, Track

ProgressFn = Callable[[float], None]
CancelFn = Callable[[], bool]
MIX = "(mix)"


@dataclass
class Rendered:
    track: str
    path: Path
    take: int
    audio: np.ndarray  # (channels, frames) at the session rate, as written
    position: float  # seconds
    seed: int | None


class Models:
    """Loaded bundles by name, so a session renders many tracks without reloading."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        from engine import load_bundle

        if name not in self._cache:
            self._cache[name] = load_bundle(name)
        return self._cache[name]


def check_track(session: Session, track: Track, models: Models) -> list[Any]:
    """Everything that can be checked before generating: model, files, fx. Returns the fx plugins."""
    levels = len(models.get(track.model).stack.levels)
    if track.vary and track.vary_level > levels:
        raise ValueError(
            f"track {track.name}: vary level {track.vary_level}, but {track.model} has {levels} level(s)"
        )
    for label, path in (("primer", track.primer), ("vary", track.vary)):
        if path and not Path(path).is_file():
            raise FileNotFoundError(f"track {track.name}: {label} file not found: {path}")
    return build_board(track.fx)


def generate(session: Session, track: Track, models: Models, seed: int,
             progress: ProgressFn | None, should_cancel: CancelFn | None) -> np.ndarray:
    """Mono float32 audio at the session rate, exactly ``length`` long."""
    bundle = models.get(track.model)
    stack, rate = bundle.stack, bundle.sample_rate
    seconds = session.length_of(track)
    opts = dict(seed=seed, temperature=track.temperature, top_p=track.top_p, progress=progress,
                should_cancel=should_cancel)
    if track.vary:
        audio = stack.vary(read_clip(track.vary, rate), level=track.vary_level, **opts)[0]
    elif track.primer:
        audio = stack.continue_(read_clip(track.primer, rate), seconds, **opts)[0]
        audio = audio[-round(seconds * rate):]  # the continuation only: the primer is the user's
    else:
        audio = stack.sample(seconds, **opts)[0]
    return _at_session_rate(session, audio, rate, None if track.vary else seconds)


MAX_ROWS = 8  # rows of one batched pass: beyond this throughput hardly grows
ROW_SECONDS = 120.0  # audio seconds of one pass (its conditioning is held in memory for every row)


def batch_key(session: Session, track: Track) -> tuple[Any, ...] | None:
    """Tracks with equal keys can be generated together, as rows of one pass (``generate_rows``):
    same model, length, temperature and top-p, a fixed seed, no primer or source. None: alone."""
    if track.vary or track.primer or track.seed < 0:
        return None
    return track.model, session.length_of(track), track.temperature, track.top_p


def generate_rows(session: Session, tracks: list[Track], models: Models, progress: ProgressFn | None,
                  should_cancel: CancelFn | None) -> list[np.ndarray]:
    """``generate`` for tracks of one ``batch_key`` in one batched pass; each row is the audio the
    track renders alone (the engine gives every row its own seeded stream)."""
    keys = {batch_key(session, t) for t in tracks}
    if len(keys) != 1 or None in keys:
        raise ValueError("generate_rows needs tracks of one batch key")
    bundle = models.get(tracks[0].model)
    seconds = session.length_of(tracks[0])
    rows = bundle.stack.sample(seconds, seed=[t.seed for t in tracks], temperature=tracks[0].temperature,
                               top_p=tracks[0].top_p, progress=progress, should_cancel=should_cancel)
    return [_at_session_rate(session, row, bundle.sample_rate, seconds) for row in rows]


def group_rows(session: Session, tracks: list[Track], max_rows: int | None = None) -> list[list[int]]:
    """Indices of ``tracks`` grouped into passes: equal ``batch_key``, at most ``MAX_ROWS`` rows (or
    ``max_rows`` if fewer) and ``ROW_SECONDS`` audio seconds each (what a pass holds in memory grows with
    both); the others alone. Order is kept within a group."""
    groups: list[list[int]] = []
    open_groups: dict[Any, list[int]] = {}
    for i, track in enumerate(tracks):
        key = batch_key(session, track)
        group = open_groups.get(key) if key is not None else None
        rows = max(1, min(MAX_ROWS, max_rows or MAX_ROWS, int(ROW_SECONDS // session.length_of(track))))
        if group is None or len(group) >= rows:
            group = []
            groups.append(group)
            if key is not None:
                open_groups[key] = group
        group.append(i)
    return groups


def _at_session_rate(session: Session, audio: np.ndarray, rate: int, seconds: float | None) -> np.ndarray:
    """Resampled to the session rate and cut or padded to ``seconds`` (None: as long as it is)."""
    if rate != session.sample_rate:
        audio = soxr.resample(audio, rate, session.sample_rate, quality="HQ")
    frames = round(seconds * session.sample_rate) if seconds is not None else len(audio)
    out = np.zeros(frames, np.float32)
    out[: min(frames, len(audio))] = audio[:frames]
    return out


def read_clip(path: str, rate: int) -> np.ndarray:
    """A primer or source file as mono float32 at the model's rate, clipped to [-1, 1]."""
    audio, clip_rate = sf.read(path, dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    if clip_rate != rate:
        mono = soxr.resample(mono, clip_rate, rate, quality="HQ")
    return np.clip(mono, -1.0, 1.0).astype(np.float32)


def render_track(session: Session, track: Track, project: Project, models: Models, *,
                 progress: ProgressFn | None = None, should_cancel: CancelFn | None = None,
                 record: dict[str, Any] | None = None) -> Rendered:
    """Render ``track`` to a new take; ``record`` adds keys to its manifest entry (batch keys)."""
    plugins = check_track(session, track, models)
    seed = track.seed if track.seed >= 0 else secrets.randbelow(2**31)
    started = time.time()
    audio = generate(session, track, models, seed, progress, should_cancel)
    return finish_track(session, track, project, models, plugins, seed, audio, started, record)


def render_tracks(session: Session, tracks: list[Track], project: Project, models: Models, *,
                  progress: ProgressFn | None = None, should_cancel: CancelFn | None = None,
                  record: dict[str, Any] | None = None) -> list[Rendered]:
    """``render_track`` for each of ``tracks``, in order; random seeds are drawn first, so tracks
    that can share a pass (``group_rows``) are generated as its rows, each as it renders alone.
    Everything is checked before any audio is generated; ``progress`` spans all the tracks."""
    plugins = [check_track(session, track, models) for track in tracks]
    tracks = [replace(t, seed=t.seed if t.seed >= 0 else secrets.randbelow(2**31)) for t in tracks]
    groups = group_rows(session, tracks)
    out: dict[int, Rendered] = {}
    for g, group in enumerate(groups):
        def part(f: float, g: int = g) -> None:
            if progress is not None:
                progress((g + f) / len(groups))

        started = time.time()
        members = [tracks[i] for i in group]
        audio = generate_rows(session, members, models, part, should_cancel) if len(members) > 1 else \
            [generate(session, members[0], models, members[0].seed, part, should_cancel)]
        for i, a in zip(group, audio, strict=True):
            out[i] = finish_track(session, tracks[i], project, models, plugins[i], tracks[i].seed, a, started,
                                  record)
    return [out[i] for i in range(len(tracks))]


def finish_track(session: Session, track: Track, project: Project, models: Models, plugins: list[Any],
                 seed: int, audio: np.ndarray, started: float, record: dict[str, Any] | None) -> Rendered:
    """Generated ``audio`` (mono, session rate) → effects, gain → a new take, recorded in the manifest."""
    audio = apply_chain(plugins, audio[None, :], session.sample_rate) * np.float32(10 ** (track.gain_db / 20))
    stem = f"{session.index_of(track.name):02d}_{slug(track.name)}"
    reference = (record or {}).get("batch_key", "")[:32]  # lets a resumed batch know its own takes
    rendered = _write(session, project, stem, track.name, audio, session.position_of(track), seed, reference)
    bundle = models.get(track.model)
    project.record({
        "kind": "track",
        "track": track.name,
        "model": track.model,
        "model_hash": bundle.hash,
        "seed": seed,
        "parameters": {**asdict(track), "seed": seed},
        "session": {"tempo": session.tempo, "meter": list(session.meter),
                    "sample_rate": session.sample_rate, "bit_depth": session.bit_depth},
        "length_seconds": session.length_of(track),
        "files": [_file_entry(rendered, project, session)],
        "started": _stamp(started),
        "finished": _stamp(time.time()),
        "wavestack": __version__,
        **(record or {}),
    }, session.tempo, session.meter)
    return rendered


def mix(session: Session, project: Project, stems: list[Rendered], *, name: str = "mix",
        record: dict[str, Any] | None = None) -> Rendered:
    """Sum the stems at their positions, run the master chain, write the mix at the earliest start."""
    start = min(s.position for s in stems)
    rate = session.sample_rate
    channels = max(s.audio.shape[0] for s in stems)
    end = max(round((s.position - start) * rate) + s.audio.shape[1] for s in stems)
    out = np.zeros((channels, end), np.float32)
    for s in stems:
        at = round((s.position - start) * rate)
        out[:, at: at + s.audio.shape[1]] += s.audio if s.audio.shape[0] == channels else s.audio.mean(0)
    out = apply_chain(build_board(session.master_fx), out, rate)
    rendered = _write(session, project, name, MIX, out, start, None)
    project.record({
        "kind": "mix",
        "stems": [str(s.path.relative_to(project.root)) for s in stems],
        "master_fx": session.master_fx,
        "session": {"tempo": session.tempo, "meter": list(session.meter),
                    "sample_rate": rate, "bit_depth": session.bit_depth},
        "files": [_file_entry(rendered, project, session)],
        "finished": _stamp(time.time()),
        "wavestack": __version__,
        **(record or {}),
    }, session.tempo, session.meter)
    return rendered


def read_stem(project: Project, entry: dict[str, Any]) -> Rendered:
    """A rendered file back from the project, as :func:`mix` takes it."""
    audio, _ = sf.read(project.root / entry["path"], dtype="float32", always_2d=True)
    return Rendered(entry["track"], project.root / entry["path"], entry["take"], audio.T.copy(),
                    entry["position_seconds"], None)


def _write(session: Session, project: Project, stem: str, track: str, audio: np.ndarray,
           position: float, seed: int | None, reference: str = "") -> Rendered:
    rate = session.sample_rate
    history = f"A={'FLOAT' if session.bit_depth == 32 else 'PCM'},F={rate},W={session.bit_depth},T=wavestack"

    def write(path: Path) -> None:
        write_bwf(path, audio.T, rate, bits=session.bit_depth, time_reference=round(position * rate),
                  description=f"wavestack {track} seed {seed}", coding_history=history, reference=reference)

    path, take = project.write_new(stem, write)
    return Rendered(track, path, take, audio, position, seed)


def _file_entry(r: Rendered, project: Project, session: Session) -> dict[str, Any]:
    return {
        "track": r.track,
        "path": str(r.path.relative_to(project.root)),
        "take": r.take,
        "position_seconds": r.position,
        "time_reference": round(r.position * session.sample_rate),
        "seconds": r.audio.shape[1] / session.sample_rate,
        "channels": r.audio.shape[0],
        "sample_rate": session.sample_rate,
        "bit_depth": session.bit_depth,
    }


def _stamp(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))
