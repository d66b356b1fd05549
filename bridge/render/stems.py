"""Render tracks of a session into its project folder — the one code path of the server's jobs,
``wavestack render`` and batch rendering.

A track: generate with the engine at the model's rate → resample to the session rate (soxr) →
the track's effects chain (tails kept) → track gain → BWF stem at its position. "Generate all"
renders every track, then mixes the stems at their positions through the master chain.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from bridge import __version__
from bridge.protocol import MIX
from bridge.render import memory
from bridge.render.bwf import write_bwf
from bridge.render.fx import apply_chain, build_board
from bridge.render.generate import (
    CancelFn,
    ProgressFn,
    check_clip,
    config_of,
    generate,
    generate_rows,
    group_rows,
    levels_of,
    model_hash_of,
)
from bridge.render.project import Project, slug
from bridge.session import Session, Track


@dataclass
class Rendered:
    """One written take: its file, audio, position and seed."""
    track: str
    path: Path
    take: int
    audio: np.ndarray  # (channels, frames) at the session rate, as written
    position: float  # seconds
    seed: int | None


def check_renderable(session: Session, track: Track) -> list[Any]:
    """Everything that can be checked before generating: model, files, memory, fx. Returns the fx
    plugins."""
    levels = levels_of(track.model)
    if track.vary and track.vary_level > levels:
        raise ValueError(
            f"track {track.name}: vary level {track.vary_level}, but {track.model} has {levels} level(s)"
        )
    seconds = 0.0 if track.vary else session.length_of(track)  # a variation is as long as its source
    for label, path in (("primer", track.primer), ("vary", track.vary)):
        if not path:
            continue
        if not Path(path).is_file():
            raise FileNotFoundError(f"track {track.name}: {label} file not found: {path}")
        seconds += check_clip(path, f"track {track.name}: {label}")
    memory.check(f"track {track.name} ({seconds:.0f} s)",
                 memory.render_bytes(config_of(track.model), seconds, session.sample_rate))
    return build_board(track.fx)


def check_mix(session: Session, tracks: list[Track]) -> None:
    """Refuse rendering ``tracks`` and their mix if it would not fit in memory: the largest track's
    render, every stem held for the mix, and the mix itself with its master chain."""
    rate = session.sample_rate
    span = max(session.position_of(t) + session.length_of(t) for t in tracks) - \
        min(session.position_of(t) for t in tracks)
    held = sum(memory.held_stem_bytes(session.length_of(t), rate) for t in tracks)
    largest = max(memory.render_bytes(config_of(t.model), session.length_of(t), rate) for t in tracks)
    memory.check(f"all {len(tracks)} tracks and their mix ({span:.0f} s)",
                 largest + held + memory.OUTPUT_COPIES * memory.held_stem_bytes(span, rate))


def render_track(session: Session, track: Track, project: Project, *,
                 progress: ProgressFn | None = None, should_cancel: CancelFn | None = None,
                 manifest_extra: dict[str, Any] | None = None) -> Rendered:
    """Render ``track`` to a new take; ``manifest_extra`` adds keys to its manifest entry (batch keys)."""
    plugins = check_renderable(session, track)
    seed = track.seed if track.seed >= 0 else secrets.randbelow(2**31)
    started = time.time()
    audio = generate(session, track, seed, progress, should_cancel)
    return finish_track(session, track, project, plugins, seed, audio, started, manifest_extra)


def render_tracks(session: Session, tracks: list[Track], project: Project, *,
                  progress: ProgressFn | None = None, should_cancel: CancelFn | None = None,
                  manifest_extra: dict[str, Any] | None = None) -> list[Rendered]:
    """``render_track`` for each of ``tracks``, in order; random seeds are drawn first, so tracks
    that can share a pass (``group_rows``) are generated as its rows, each as it renders alone.
    Everything is checked before any audio is generated; ``progress`` spans all the tracks."""
    plugins = [check_renderable(session, track) for track in tracks]
    check_mix(session, tracks)  # every stem is held until the last is done
    tracks = [replace(t, seed=t.seed if t.seed >= 0 else secrets.randbelow(2**31)) for t in tracks]
    groups = group_rows(session, tracks)
    out: dict[int, Rendered] = {}
    for g, group in enumerate(groups):
        def part(f: float, g: int = g) -> None:
            if progress is not None:
                progress((g + f) / len(groups))

        started = time.time()
        members = [tracks[i] for i in group]
        audio = generate_rows(session, members, part, should_cancel) if len(members) > 1 else \
            [generate(session, members[0], members[0].seed, part, should_cancel)]
        for i, a in zip(group, audio, strict=True):
            out[i] = finish_track(session, tracks[i], project, plugins[i], tracks[i].seed, a, started,
                                  manifest_extra)
    return [out[i] for i in range(len(tracks))]


def finish_track(session: Session, track: Track, project: Project, plugins: list[Any], seed: int,
                 audio: np.ndarray, started: float, manifest_extra: dict[str, Any] | None) -> Rendered:
    """Generated ``audio`` (mono, session rate) → effects, gain → a new take, recorded in the manifest."""
    return write_take(session, track, project, seed, process_track(track, plugins, audio, session),
                      started, manifest_extra)


def process_track(track: Track, plugins: list[Any], audio: np.ndarray, session: Session) -> np.ndarray:
    """Generated ``audio`` (mono, session rate) through the track's effects and gain: (channels, frames)."""
    return apply_chain(plugins, audio[None, :], session.sample_rate) * np.float32(10 ** (track.gain_db / 20))


def write_take(session: Session, track: Track, project: Project, seed: int, audio: np.ndarray,
               started: float, manifest_extra: dict[str, Any] | None) -> Rendered:
    """Processed ``audio`` (channels, frames) → a new take of ``track``, recorded in the manifest."""
    stem = f"{session.index_of(track.name):02d}_{slug(track.name)}"
    reference = (manifest_extra or {}).get("batch_key", "")[:32]  # lets a resumed batch know its own takes
    rendered = _write(session, project, stem, track.name, audio, session.position_of(track), seed, reference)
    _recorded(project, rendered, {
        "kind": "track",
        "track": track.name,
        "model": track.model,
        "model_hash": model_hash_of(track.model),
        "seed": seed,
        "parameters": {**asdict(track), "seed": seed},
        "session": {"tempo": session.tempo, "meter": list(session.meter),
                    "sample_rate": session.sample_rate, "bit_depth": session.bit_depth},
        "length_seconds": session.length_of(track),
        "files": [_file_entry(rendered, project, session)],
        "started": _stamp(started),
        "finished": _stamp(time.time()),
        "wavestack": __version__,
        **(manifest_extra or {}),
    }, session)
    return rendered


def mix(session: Session, project: Project, stems: list[Rendered], *, name: str = "mix",
        manifest_extra: dict[str, Any] | None = None) -> Rendered:
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
    out, safety_db = below_ceiling(out, rate)
    rendered = _write(session, project, name, MIX, out, start, None)
    _recorded(project, rendered, {
        "kind": "mix",
        "stems": [str(s.path.relative_to(project.root)) for s in stems],
        "master_fx": session.master_fx,
        "safety_gain_db": safety_db,
        "session": {"tempo": session.tempo, "meter": list(session.meter),
                    "sample_rate": rate, "bit_depth": session.bit_depth},
        "files": [_file_entry(rendered, project, session)],
        "finished": _stamp(time.time()),
        "wavestack": __version__,
        **(manifest_extra or {}),
    }, session)
    return rendered


def _recorded(project: Project, rendered: Rendered, entry: dict[str, Any], session: Session) -> None:
    """Record a written take in the manifest; if that fails (a full disk), the take goes too, so
    no file lies in the project that the manifest does not know."""
    try:
        project.record(entry, session.tempo, session.meter)
    except BaseException:
        rendered.path.unlink(missing_ok=True)
        raise


CEILING_DB = -1.0  # a mix's true peak stays below this (dBFS), so no file and no D/A converter clips


def true_peak(audio: np.ndarray, rate: int) -> float:
    """The peak of ``audio`` (channels, frames) between its samples too: 4× oversampled (soxr)."""
    if audio.size == 0:
        return 0.0
    upsampled = soxr.resample(np.ascontiguousarray(audio.T), rate, 4 * rate, quality="HQ")
    return float(max(np.abs(audio).max(), np.abs(upsampled).max()))


def below_ceiling(audio: np.ndarray, rate: int) -> tuple[np.ndarray, float]:
    """``audio`` scaled down, if it must be, so its true peak is at ``CEILING_DB``; the gain in dB."""
    ceiling, peak = 10 ** (CEILING_DB / 20), true_peak(audio, rate)
    if peak <= ceiling:
        return audio, 0.0
    return (audio * np.float32(ceiling / peak)).astype(np.float32), round(20 * np.log10(ceiling / peak), 3)


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
