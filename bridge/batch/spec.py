"""Batch specs: a session and tracks with lists to expand into many renders, checked up front.

    [session]
    project = "night"              # relative to the spec file
    tempo = 120
    [[tracks]]
    name = "keys"
    model = "default"
    bars = 2
    seeds = [1, 2, 3]              # or random_seeds = 50 (drawn from the track name: stable)
    temperatures = [0.9, 1.0]
    top_p = [1.0]
    primers = "clips/*.wav"        # or sources = "..." with vary_level = 1

Each render has a key: the sha256 of everything that determines its audio (model hash, seed, every
track and session parameter). Finished renders are in the project manifest with their key, so
running a spec again renders only what is missing.
"""

from __future__ import annotations

import glob
import hashlib
import itertools
import json
import math
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from bridge.protocol import ProtocolError
from bridge.render.checks import check_fx, check_model
from bridge.render.generate import model_hash_of
from bridge.session import Session, Track
from engine.errors import EngineError

MAX_RENDERS = 100_000  # renders one spec may expand to (checked before anything is expanded)
EXPAND = {"seeds", "random_seeds", "temperatures", "top_ps", "primers", "sources"}
SESSION_KEYS = {"project", "tempo", "meter", "sample_rate", "bit_depth", "master_fx", "mixes"}
TRACK_KEYS = {f.name for f in fields(Track)}


class SpecError(ValueError):
    """A spec with problems; ``problems`` lists each one with its TOML location."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{path}: {len(problems)} problem(s):\n" + "\n".join(f"  {p}" for p in problems))


@dataclass(frozen=True)
class Render:
    """One render of an expanded spec: a concrete track and the key that finds its take again."""

    index: int  # position in the expanded list (shards take every N-th)
    track: Track  # concrete: one seed, temperature, top_p, primer or source
    key: str


@dataclass
class Spec:
    """A parsed batch spec: the session, every render it expands to, whether to mix."""
    path: Path
    session: Session
    jobs: list[Render] = field(default_factory=list)
    mixes: bool = False  # also mix variation k of every track through the master chain

    def variations(self) -> list[list[Render]]:
        """Variation k: the k-th render of every track that has one (what mix k sums)."""
        by_track: dict[str, list[Render]] = {}
        for job in self.jobs:
            by_track.setdefault(job.track.name, []).append(job)
        count = max((len(v) for v in by_track.values()), default=0)
        return [[jobs[k] for jobs in by_track.values() if k < len(jobs)] for k in range(count)]

    def shard(self, k: int, n: int) -> list[Render]:
        """The deterministic 1/n of the jobs that shard k (1-based) renders."""
        return [j for j in self.jobs if j.index % n == k - 1]


def load_spec(path: Path, model_hash: Any = None) -> Spec:
    """Read, check and expand a spec; raises SpecError listing every problem found."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SpecError(path, ["file not found"]) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(path, [f"not valid TOML: {exc}"]) from None
    except RecursionError:
        raise SpecError(path, ["tables or arrays nested too deeply to be a spec"]) from None
    problems: list[str] = []
    for key in sorted(set(data) - {"session", "tracks"}):
        problems.append(f"{key}: unknown table; a spec has [session] and [[tracks]]")
    session = _session(data.get("session", {}), path.parent, problems)
    tables = data.get("tracks", [])
    if not isinstance(tables, list) or not tables:
        problems.append("tracks: a spec needs at least one [[tracks]] table")
        tables = []
    bases: list[tuple[Track, dict[str, Any]]] = []
    for i, table in enumerate(tables):
        base = _track(table, f"tracks[{i}]", path.parent, problems)
        if base is not None:
            bases.append(base)
    names = [t.name for t, _ in bases]
    for name in {n for n in names if names.count(n) > 1}:
        problems.append(f"tracks: the name {name!r} is used twice")
    count = sum(math.prod(len(v) for v in lists.values()) for _, lists in bases)
    if count > MAX_RENDERS:
        problems.append(f"the spec expands to {count:,} renders; at most {MAX_RENDERS:,} per spec (split it)")
    if not problems:
        session.tracks = [t for t, _ in bases]
        _check_models(bases, problems, model_hash)
    if problems:
        raise SpecError(path, problems)
    spec = Spec(path=path, session=session, mixes=data.get("session", {}).get("mixes", False) is True)
    hashes = model_hash or model_hash_of
    for base, lists in bases:
        for combo in itertools.product(*lists.values()):
            track = replace(base, **dict(zip(lists, combo, strict=True)))
            spec.jobs.append(Render(len(spec.jobs), track, render_key(session, track, hashes(track.model))))
    return spec


def render_key(session: Session, track: Track, model_hash: str) -> str:
    """What determines a render's audio and placement, hashed."""
    blob = json.dumps({
        "model_hash": model_hash,
        "track": asdict(track),
        "session": {"tempo": session.tempo, "meter": list(session.meter), "sample_rate": session.sample_rate,
                    "bit_depth": session.bit_depth},
    }, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _session(table: Any, root: Path, problems: list[str]) -> Session:
    if not isinstance(table, dict):
        problems.append("session: expected a table")
        return Session()
    for key in sorted(set(table) - SESSION_KEYS):
        problems.append(f"session.{key}: unknown key; allowed: {', '.join(sorted(SESSION_KEYS))}")
    known = {k: v for k, v in table.items() if k in SESSION_KEYS - {"mixes"}}
    if not isinstance(table.get("mixes", False), bool):
        problems.append(f"session.mixes: true or false, got {table['mixes']!r}")
    elif table.get("master_fx") and not table.get("mixes"):
        problems.append("session.master_fx: the master chain applies to mixes; set mixes = true")
    if "project" not in known:
        problems.append("session.project: missing (the folder stems are written to)")
    else:
        known["project"] = str((root / str(known["project"])).resolve())
    session = Session()
    for key, value in known.items():  # one key at a time, so every bad key is reported
        try:
            parsed = getattr(Session.from_dict({key: value}), key)
            setattr(session, key, check_fx(parsed) if key == "master_fx" else parsed)
        except (ProtocolError, ValueError) as exc:
            problems.append(f"session.{key}: {exc}")
    return session


def _track(table: Any, where: str, root: Path, problems: list[str]) -> tuple[Track, dict[str, list]] | None:
    if not isinstance(table, dict):
        problems.append(f"{where}: expected a table")
        return None
    name = table.get("name")
    plain = {k: v for k, v in table.items() if k not in EXPAND}
    before = len(problems)
    try:
        Track.from_dict({"name": name})
    except ProtocolError as exc:
        problems.append(f"{where}.name: {exc}")
        return None
    allowed = TRACK_KEYS | EXPAND
    for key, value in plain.items():
        if key == "name":
            continue
        if key not in allowed:
            problems.append(f"{where}.{key}: unknown key; a track takes {', '.join(sorted(allowed))}")
            continue
        length = {} if key in ("seconds", "bars") else {"seconds": 1.0}
        try:
            track = Track.from_dict({"name": name, **length, key: value})
            if key == "fx":
                check_fx(track.fx)  # builds the chain: its plugins and their parameters
            if key == "model":
                check_model(track.model)  # a typo is listed with every other problem
        except (ProtocolError, ValueError, EngineError) as exc:
            problems.append(f"{where}.{key}: {exc}")
    if "seconds" in plain and "bars" in plain:
        problems.append(f"{where}: give seconds or bars, not both")
    lists = _lists(table, where, root, name, problems)
    if len(problems) > before:
        return None
    from bridge.render.generate import sampling_of

    for key, value in sampling_of(str(plain.get("model", "default"))).items():
        if key not in plain and key not in lists:  # the sampling the model was measured with
            plain[key] = value
    return Track.from_dict(plain), lists


def _lists(table: dict[str, Any], where: str, root: Path, name: str, problems: list[str]) -> dict[str, list]:
    lists: dict[str, list] = {}
    if "seeds" in table and "random_seeds" in table:
        problems.append(f"{where}: give seeds or random_seeds, not both")
    if "random_seeds" in table:
        n = table["random_seeds"]
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 100_000:
            problems.append(f"{where}.random_seeds: a count in [1, 100000], got {n!r}")
        else:
            entropy = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
            lists["seed"] = [int(s) & 0x7FFFFFFF for s in np.random.SeedSequence(entropy).generate_state(n)]
    for key, field_name in (("seeds", "seed"), ("temperatures", "temperature"), ("top_ps", "top_p")):
        if key not in table:
            continue
        values = table[key]
        if not isinstance(values, list) or not values:
            problems.append(f"{where}.{key}: expected a non-empty list")
            continue
        if len(values) > MAX_RENDERS:
            problems.append(f"{where}.{key}: {len(values):,} values; at most {MAX_RENDERS:,}")
            continue
        for i, value in enumerate(values):
            try:
                Track.from_dict({"name": name, field_name: value})
            except (ProtocolError, ValueError) as exc:
                problems.append(f"{where}.{key}[{i}]: {exc}")
        lists[field_name] = values
    for key, field_name in (("primers", "primer"), ("sources", "vary")):
        if key in table:
            pattern = str(table[key])
            files = sorted(glob.glob(str(root / pattern), recursive=True))
            if not files:
                problems.append(f"{where}.{key}: no file matches {pattern!r} (relative to the spec)")
            lists[field_name] = files
    if "primer" in lists and "vary" in lists:
        problems.append(f"{where}: give primers or sources, not both")
    return lists


def _check_models(bases: list[tuple[Track, dict]], problems: list[str], model_hash: Any) -> None:
    """Every model loads (effects and files were checked key by key already)."""
    from engine.errors import EngineError

    for i, (track, _) in enumerate(bases):
        try:
            (model_hash or model_hash_of)(track.model)
        except EngineError as exc:
            problems.append(f"tracks[{i}].model: {exc}")
