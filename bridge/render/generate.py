"""Generation for a track: its model's audio at the session rate, exactly as long as the track.

One process-wide cache of loaded bundles serves the server, ``wavestack render`` and batch
workers: a bundle is loaded once per process and reloaded only when its files change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from bridge.render import memory
from bridge.session import Session, Track

ProgressFn = Callable[[float], None]
CancelFn = Callable[[], bool]
_LOADED: dict[tuple[str, str], Any] = {}
_MANIFESTS: dict[tuple[str, int], tuple[Path, dict[str, Any], str]] = {}
_LOCK = threading.Lock()


def _manifest(name: str) -> tuple[Path, dict[str, Any], str]:
    """Bundle ``name``'s folder, manifest and model hash, read once per version of its manifest."""
    from engine.catalog import MANIFEST, model_hash, read_manifest, resolve

    path = resolve(name).resolve()
    if not (path / MANIFEST).is_file():
        read_manifest(path)  # raises the BundleError that says what is missing
    key = (str(path), (path / MANIFEST).stat().st_mtime_ns)
    if key not in _MANIFESTS:
        meta = read_manifest(path)
        _MANIFESTS[key] = (path, meta, model_hash(meta))
    return _MANIFESTS[key]


def bundle(name: str) -> Any:
    """The loaded bundle ``name`` (an ``engine.Bundle``), from this process's cache."""
    path, _, digest = _manifest(name)
    key = (str(path), digest)
    with _LOCK:  # one load per bundle, even when two threads ask at once
        if key not in _LOADED:
            from engine.bundle import load_bundle

            _LOADED[key] = load_bundle(path)
        return _LOADED[key]


def sampling_of(name: str) -> dict[str, float]:
    """The temperature and top-p bundle ``name`` was measured with, read from its manifest: what a
    new track of that model starts from (nothing is loaded)."""
    from engine.catalog import sampling

    return sampling(_manifest(name)[1])


def config_of(name: str) -> dict[str, Any]:
    """Bundle ``name``'s stack configuration, read from its manifest (nothing is loaded)."""
    return _manifest(name)[1]["config"]


def levels_of(name: str) -> int:
    """How many levels bundle ``name`` has, read from its manifest (nothing is loaded)."""
    return len(config_of(name)["levels"])


def model_hash_of(name: str) -> str:
    """The model hash of bundle ``name``, read from its manifest (nothing is loaded)."""
    return _manifest(name)[2]


def generate(session: Session, track: Track, seed: int,
             progress: ProgressFn | None, should_cancel: CancelFn | None) -> np.ndarray:
    """Mono float32 audio at the session rate, exactly ``length`` long."""
    loaded = bundle(track.model)
    stack, rate = loaded.stack, loaded.sample_rate
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


def generate_rows(session: Session, tracks: list[Track], progress: ProgressFn | None,
                  should_cancel: CancelFn | None) -> list[np.ndarray]:
    """``generate`` for tracks of one ``batch_key`` in one batched pass; each row is the audio the
    track renders alone (the engine gives every row its own seeded stream)."""
    keys = {batch_key(session, t) for t in tracks}
    if len(keys) != 1 or None in keys:
        raise ValueError("generate_rows needs tracks of one batch key")
    loaded = bundle(tracks[0].model)
    seconds = session.length_of(tracks[0])
    rows = loaded.stack.sample(seconds, seed=[t.seed for t in tracks], temperature=tracks[0].temperature,
                               top_p=tracks[0].top_p, progress=progress, should_cancel=should_cancel)
    return [_at_session_rate(session, row, loaded.sample_rate, seconds) for row in rows]


def group_rows(session: Session, tracks: list[Track], max_rows: int | None = None) -> list[list[int]]:
    """Indices of ``tracks`` grouped into passes: equal ``batch_key``, at most ``MAX_ROWS`` rows (or
    ``max_rows`` if fewer), ``ROW_SECONDS`` audio seconds and the memory limit each (what a pass holds
    in memory grows with both); the others alone. Order is kept within a group."""
    groups: list[list[int]] = []
    open_groups: dict[Any, list[int]] = {}
    for i, track in enumerate(tracks):
        key = batch_key(session, track)
        group = open_groups.get(key) if key is not None else None
        seconds = session.length_of(track)
        fit = memory.rows_within(config_of(track.model), seconds, session.sample_rate) if key else 1
        rows = max(1, min(MAX_ROWS, max_rows or MAX_ROWS, int(ROW_SECONDS // seconds), fit))
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


MAX_CLIP_SECONDS = 600.0  # a primer or variation source longer than the longest track is refused


def check_clip(path: str, label: str = "audio file") -> float:
    """Refuse, from its header alone, a file too long to be a primer or source (or not audio);
    returns its length in seconds."""
    try:
        info = sf.info(path)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise ValueError(f"{label} {path} is not audio soundfile can read ({exc})") from None
    seconds = info.frames / max(info.samplerate, 1)
    if seconds > MAX_CLIP_SECONDS:
        length = f"{seconds / 3600:.1f} h" if seconds > 7200 else f"{seconds / 60:.0f} min"
        raise ValueError(f"{label} {path} is {length} long; at most {MAX_CLIP_SECONDS:.0f} s "
                         "(cut the part you want)")
    return seconds


def read_clip(path: str, rate: int) -> np.ndarray:
    """A primer or source file as mono float32 at the model's rate, clipped to [-1, 1]."""
    check_clip(path)
    audio, clip_rate = sf.read(path, dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    if clip_rate != rate:
        mono = soxr.resample(mono, clip_rate, rate, quality="HQ")
    return np.clip(mono, -1.0, 1.0).astype(np.float32)
