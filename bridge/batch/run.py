"""Running a batch: resume from the manifest, worker processes, shards, progress and a summary.

Workers compute — generation, effects, gain: the server's code path (``bridge.render``) — and send
the audio back; the batch's own process alone writes each take and records it in the project
manifest with its batch key, so no worker can leave a partial file and none needs the project
folder. Workers are separate processes (``spawn``), each with an equal share of the CPU threads, or
Ray tasks (``bridge.batch.onray``); a render's audio depends only on its parameters, so any number
of workers gives the same files' contents.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from bridge.batch.spec import Render, Spec
from bridge.render.generate import model_hash_of
from bridge.render.project import Claim, Project


@dataclass
class Outcome:
    """How one render of a batch ended: its file, length and wall time, or why it failed."""
    index: int
    track: str
    ok: bool
    path: str = ""
    seconds: float = 0.0  # audio rendered
    wall: float = 0.0
    reason: str = ""


@dataclass
class Summary:
    """What a batch run did: renders skipped as done, their outcomes, mixes, wall time."""
    total: int  # jobs of this shard
    skipped: int  # already in the manifest
    outcomes: list[Outcome] = field(default_factory=list)
    mixes: list[str] = field(default_factory=list)
    wall: float = 0.0
    workers: int = 0  # processes that computed renders
    retries: int = 0  # renders computed again after their worker was lost (Ray)

    @property
    def failed(self) -> list[Outcome]:
        """The outcomes that failed."""
        return [o for o in self.outcomes if not o.ok]

    def table(self) -> str:
        """The outcomes as a table for the terminal."""
        done = [o for o in self.outcomes if o.ok]
        audio = sum(o.seconds for o in done)
        rtf = self.wall / audio if audio else float("nan")
        lines = [
            f"renders in this shard   {self.total}",
            f"already done (skipped)  {self.skipped}",
            f"rendered now            {len(done)}",
            f"failed                  {len(self.failed)}",
            f"mixes written           {len(self.mixes)}",
            f"audio rendered          {audio:.1f} s",
            f"wall time               {self.wall:.1f} s",
            f"real-time factor        {rtf:.2f} (wall / audio)",
            f"worker processes        {self.workers}",
        ]
        if self.retries:
            lines.append(f"retried after a lost worker  {self.retries}")
        lines += [f"  failed #{o.index} {o.track}: {o.reason}" for o in self.failed]
        return "\n".join(lines)


def pending(spec: Spec, jobs: list[Render]) -> list[Render]:
    """The jobs whose key is not yet in the project manifest."""
    done = {r.get("batch_key") for r in Project(spec.session.project).read_manifest()["renders"]}
    return [j for j in jobs if j.key not in done]


def run_batch(spec: Spec, *, workers: int = 1, shard: tuple[int, int] = (1, 1), ray: Any = None,
              show_progress: bool = True, log: Any = print) -> Summary:
    """Render what the spec asks for and the project does not hold yet; resumable after a kill.
    ``ray``: a ``bridge.batch.onray.RayOptions`` to compute on a Ray cluster instead of ``workers``
    local processes. Workers only compute; this process alone writes the project, and holds it
    against another server or batch while it runs."""
    claim = Claim(Path(spec.session.project))
    for path in claim.set_aside:  # an interrupted run's; its render is simply missing, so done again
        log(f"{path.name} was written but not recorded by an interrupted run: moved to {path.parent}")
    try:
        return _run_batch(spec, workers, shard, ray, show_progress, log)
    finally:
        claim.release()


def _run_batch(spec: Spec, workers: int, shard: tuple[int, int], ray: Any, show_progress: bool,
               log: Any) -> Summary:
    selected = spec.shard(*shard)
    todo = pending(spec, selected)
    summary = Summary(total=len(selected), skipped=len(selected) - len(todo))
    started = time.monotonic()
    bar = tqdm(total=len(todo), desc="batch", unit="render", disable=not show_progress, dynamic_ncols=True)
    audio = 0.0
    by_index = {job.index: job for job in todo}
    seen: set[str] = set()

    def finished(computed: Computed) -> None:
        nonlocal audio
        outcome = write_computed(spec, by_index[computed.index], computed)
        if computed.worker:  # (a render whose Ray task failed outright has none)
            seen.add(computed.worker)
        summary.outcomes.append(outcome)
        audio += outcome.seconds
        bar.update(1)
        bar.set_postfix_str(f"{audio:.1f} s of audio")
        text = f"{outcome.path} ({outcome.seconds:.1f} s in {outcome.wall:.1f} s)" if outcome.ok else \
            f"FAILED #{outcome.index} {outcome.track}: {outcome.reason}"
        (bar.write if show_progress else log)(text)

    hashes = {job.track.model: model_hash_of(job.track.model) for job in todo}
    work = replace(spec, jobs=[])  # each worker is sent its own jobs, not the whole spec
    if ray is not None and todo:  # (nothing left to render: no cluster to start or join)
        from bridge.batch.onray import compute_on_ray

        def plan(slots: int) -> list[list[Render]]:
            return group_jobs(spec, todo, max_rows=max(1, -(-len(todo) // slots)))

        summary.retries = compute_on_ray(ray, work, plan, hashes, finished)
    elif workers <= 1:
        _init_worker(os.cpu_count() or 1)
        for group in group_jobs(spec, todo):
            for computed in compute_group(work, group, hashes):
                finished(computed)
    else:
        # passes small enough that every worker gets one
        groups = group_jobs(spec, todo, max_rows=max(1, -(-len(todo) // workers)))
        threads = max(1, (os.cpu_count() or 1) // workers)
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker_process,
                                 initargs=(threads,)) as pool:
            running = {pool.submit(compute_group, work, group, hashes) for group in groups}
            while running:
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    for computed in future.result():
                        finished(computed)
    bar.close()
    summary.workers = len(seen)
    if spec.mixes:
        summary.mixes = make_mixes(spec, log=bar.write if show_progress else log)
    summary.wall = time.monotonic() - started
    return summary


def make_mixes(spec: Spec, log: Any = print) -> list[str]:
    """Mix variation k of every track (through the master chain) once all its renders exist.

    A mix's key hashes its stems' keys and the master chain, so re-running makes no duplicate.
    """
    from bridge.render.stems import mix, read_stem

    project = Project(spec.session.project)
    manifest = project.read_manifest()
    files = {r["batch_key"]: r["files"][0] for r in manifest["renders"] if r.get("batch_key")}
    done = {r.get("mix_key") for r in manifest["renders"]}
    written = []
    for k, members in enumerate(spec.variations()):
        keys = [j.key for j in members]
        if not all(key in files for key in keys):
            continue  # a render failed or is in another shard: no mix for this variation here
        key = hashlib.sha256(json.dumps({"stems": keys, "master_fx": spec.session.master_fx},
                                        sort_keys=True).encode()).hexdigest()
        if key in done:
            continue
        stems = [read_stem(project, files[stem_key]) for stem_key in keys]
        rendered = mix(spec.session, project, stems, name=f"mix_v{k + 1:02d}",
                       manifest_extra={"mix_key": key, "variation": k + 1, "stem_keys": keys})
        log(f"{rendered.path} (mix of variation {k + 1})")
        written.append(str(rendered.path))
    return written


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _init_worker_process(threads: int) -> None:
    """A worker process: dies with the batch that started it (a killed batch leaves no writers)."""
    _die_with_parent()
    _init_worker(threads)


def _die_with_parent() -> None:
    """Ask Linux to end this process when its parent dies (prctl PR_SET_PDEATHSIG); elsewhere a no-op."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before the request took effect
        os._exit(1)


def group_jobs(spec: Spec, jobs: list[Render], max_rows: int | None = None) -> list[list[Render]]:
    """Jobs in groups that generate as rows of one pass (``render.group_rows``); the others alone."""
    from bridge.render.generate import group_rows

    return [[jobs[i] for i in group] for group in group_rows(spec.session, [j.track for j in jobs], max_rows)]


@dataclass
class Computed:
    """One render's audio as a worker made it, for the batch's own process to write, or why it failed."""
    index: int
    audio: np.ndarray | None  # (channels, frames) at the session rate, effects and gain applied
    seed: int = 0
    started: float = 0.0  # wall clock when its generation began
    wall: float = 0.0
    reason: str = ""
    worker: str = ""  # host:pid of the process that computed it


def compute_group(spec: Spec, jobs: list[Render], hashes: dict[str, str],
                  files: dict[str, bytes] | None = None) -> list[Computed]:
    """Compute a group from ``group_jobs`` — one batched generation, then each take's effects — and
    write nothing. ``hashes``: the model hash each model had where the batch started (a worker with
    another version of a model fails its renders rather than make other audio under the same key);
    ``files``: the primers and sources by path, for a worker on another machine. A failure is caught
    and reported per job; the others go on."""
    if files:
        with tempfile.TemporaryDirectory(prefix="wavestack-batch-") as folder:
            return _compute(spec, _localised(jobs, files, Path(folder)), hashes)
    return _compute(spec, jobs, hashes)


def _compute(spec: Spec, jobs: list[Render], hashes: dict[str, str]) -> list[Computed]:
    from bridge.render.generate import generate, generate_rows
    from bridge.render.stems import check_renderable, process_track

    worker = f"{socket.gethostname()}:{os.getpid()}"
    t0, started = time.monotonic(), time.time()
    out: dict[int, Computed] = {}
    plugins = {}
    for job in jobs:  # what can be checked before generating
        try:
            if model_hash_of(job.track.model) != hashes[job.track.model]:
                raise ValueError(f"model {job.track.model} on {socket.gethostname()} is not the one the "
                                 "batch started with (another version); install the same one")
            plugins[job.index] = check_renderable(spec.session, job.track)
        except Exception as exc:
            out[job.index] = Computed(job.index, None, wall=time.monotonic() - t0, reason=_reason(exc),
                                      worker=worker)
    ready = [job for job in jobs if job.index in plugins]
    seeds = {job.index: job.track.seed if job.track.seed >= 0 else secrets.randbelow(2**31) for job in ready}
    try:
        if len(ready) > 1:
            rows = generate_rows(spec.session, [job.track for job in ready], None, None)
        else:
            rows = [generate(spec.session, job.track, seeds[job.index], None, None) for job in ready]
    except Exception as exc:  # the pass failed, so did every job in it
        for job in ready:
            out[job.index] = Computed(job.index, None, wall=(time.monotonic() - t0) / len(ready),
                                      reason=_reason(exc), worker=worker)
        ready = []
        rows = []
    share = (time.monotonic() - t0) / max(len(ready), 1)  # the batched pass, split evenly
    for job, audio in zip(ready, rows, strict=True):
        t1 = time.monotonic()
        try:
            processed = process_track(job.track, plugins[job.index], audio, spec.session)
        except Exception as exc:
            out[job.index] = Computed(job.index, None, wall=share + time.monotonic() - t1,
                                      reason=_reason(exc), worker=worker)
            continue
        out[job.index] = Computed(job.index, processed, seeds[job.index], started,
                                  share + time.monotonic() - t1, worker=worker)
    return [out[job.index] for job in jobs]


def _localised(jobs: list[Render], files: dict[str, bytes], folder: Path) -> list[Render]:
    """``jobs`` with their primer and source paths pointing at copies of ``files`` in ``folder``."""
    local = {}
    for i, (path, data) in enumerate(sorted(files.items())):
        local[path] = folder / str(i) / Path(path).name  # its own name, for messages that name it
        local[path].parent.mkdir()
        local[path].write_bytes(data)

    def moved(track):
        return replace(track, primer=str(local.get(track.primer, track.primer)) if track.primer else "",
                       vary=str(local.get(track.vary, track.vary)) if track.vary else "")

    return [replace(job, track=moved(job.track)) for job in jobs]


def write_computed(spec: Spec, job: Render, computed: Computed) -> Outcome:
    """Write a computed render as a new take and record it (or record its failure)."""
    from bridge.render.stems import write_take

    if computed.audio is None:
        return _failed(spec, job, computed.reason, computed.wall)
    t0 = time.monotonic()
    try:
        rendered = write_take(spec.session, job.track, Project(spec.session.project), computed.seed,
                              computed.audio, computed.started, _manifest_extra(spec, job))
    except Exception as exc:
        return _failed(spec, job, _reason(exc), computed.wall + time.monotonic() - t0)
    return Outcome(job.index, job.track.name, True, str(rendered.path),
                   rendered.audio.shape[1] / spec.session.sample_rate, computed.wall + time.monotonic() - t0)


def _manifest_extra(spec: Spec, job: Render) -> dict[str, str]:
    return {"batch_key": job.key, "batch_spec": str(spec.path)}


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def _failed(spec: Spec, job: Render, reason: str, wall: float) -> Outcome:
    """Record a failed job in the manifest (so a resumed batch knows) and report it."""
    Project(spec.session.project).record(
        {"kind": "failed", "track": job.track.name, "failed_key": job.key, "reason": reason,
         "parameters": asdict(job.track), "batch_spec": str(spec.path)},
        spec.session.tempo, spec.session.meter)
    return Outcome(job.index, job.track.name, False, wall=wall, reason=reason)
