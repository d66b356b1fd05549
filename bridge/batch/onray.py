"""Batch renders as Ray tasks: on this machine (a Ray started for the batch) or on a cluster.

Each pass of a batch (``group_jobs``) is one Ray task that computes its audio
(``run.compute_group``) and returns it through Ray's object store; the batch's own process writes
the takes, so workers need no shared folder and cannot leave a partial file. The primers and
sources a pass needs travel with it. A worker process that dies is replaced and its task run again
by Ray (``max_retries``); a tally actor counts the starts, so the summary can say how many renders
were retried. Worker processes keep their loaded models between tasks (``generate.bundle``'s
cache), so a worker loads each model once.

Ray is optional: ``pip install "wavestack[ray]"``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.batch.spec import Render, Spec
from bridge.render.pluginhost import PATH_VARIABLE

MAX_RETRIES = 3  # a task whose worker process died is run again at most this many times
LOCAL_OBJECT_STORE = 256 * 2**20  # a batch's results are a few MB at a time


class RayMissing(ValueError):
    """``--ray`` without Ray installed (a usage error: the command line asks for what is not there)."""


@dataclass(frozen=True)
class RayOptions:
    """Where and how to run: ``address`` None starts a Ray on this machine for the batch ("auto":
    the cluster this machine is part of; "ray://host:10001": a remote cluster's client port);
    ``cpus`` is each task's CPU share (and its torch threads); ``gpus`` > 0 runs every task on a
    GPU worker (that share of one GPU), with the models on the GPU and the torch sampler."""
    address: str | None = None
    cpus: int = 1
    gpus: float = 0.0


SINGLE_NODE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # Ray's switch: 0 = one node, on loopback


def require_ray(local: bool = False) -> Any:
    """The ``ray`` module, or RayMissing saying how to install it. ``local``: Ray is to be started
    here for one batch, so it runs as a single node on loopback, like the server (Ray's default on
    Linux is the machine's network address); this must be decided before Ray is first imported."""
    if local:
        os.environ.setdefault(SINGLE_NODE, "0")
    try:
        import ray
    except ImportError:
        raise RayMissing('--ray needs Ray: pip install "wavestack[ray]" (on every machine of the '
                         "cluster, with the same wavestack and models)") from None
    return ray


def connect(options: RayOptions) -> tuple[Any, bool]:
    """Join (or start) the Ray the options name: the ``ray`` module, and whether this call joined
    (so the batch leaves it again when done)."""
    ray = require_ray(local=options.address is None)
    joined = not ray.is_initialized()
    if joined:
        quiet: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
        if os.environ.get(PATH_VARIABLE):  # --plugin-path: the same folders for every task
            quiet["runtime_env"] = {"env_vars": {PATH_VARIABLE: os.environ[PATH_VARIABLE]}}
        if options.address is None:
            ray.init(num_cpus=len(os.sched_getaffinity(0)), object_store_memory=LOCAL_OBJECT_STORE,
                     **quiet)
        else:
            ray.init(address=options.address, **quiet)
    return ray, joined


def compute_on_ray(options: RayOptions, spec: Spec, plan: Callable[[int], list[list[Render]]],
                   hashes: dict[str, str], finished: Callable[[Any], None]) -> int:
    """Run the passes ``plan(slots)`` makes for a cluster that runs ``slots`` tasks at once, each as
    a task; call ``finished`` with each computed render as it arrives. Returns how many tasks were
    started again after a lost worker."""
    ray, joined = connect(options)
    try:
        return _compute(ray, options, spec, plan, hashes, finished)
    finally:
        if joined:
            ray.shutdown()


def _compute(ray: Any, options: RayOptions, spec: Spec, plan: Callable[[int], list[list[Render]]],
             hashes: dict[str, str], finished: Callable[[Any], None]) -> int:
    from bridge.batch.run import Computed

    resources = ray.cluster_resources()
    if options.gpus > 0 and resources.get("GPU", 0) < options.gpus:
        raise ValueError(f"--gpus-per-task {options.gpus:g}: the Ray cluster has "
                         f"{resources.get('GPU', 0):g} GPU(s)")
    slots = max(1, int(resources.get("CPU", 1)) // options.cpus)
    if options.gpus > 0:
        slots = min(slots, max(1, int(resources["GPU"] / options.gpus)))
    groups = plan(slots)
    tally = ray.remote(num_cpus=0)(Tally).remote()
    task = ray.remote(render_pass).options(num_cpus=options.cpus, num_gpus=options.gpus,
                                           max_retries=MAX_RETRIES)
    pending = {task.remote(spec, group, hashes, _files(group), options.cpus, options.gpus > 0, tally, g): g
               for g, group in enumerate(groups)}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            group = groups[pending.pop(ref)]
            try:
                results = ray.get(ref)
            except Exception as exc:  # lost more often than it may be retried, or failed to start
                reason = f"its Ray worker failed: {str(exc).strip().splitlines()[0] if str(exc) else exc!r}"
                results = [Computed(job.index, None, reason=reason) for job in group]
            for computed in results:
                finished(computed)
    return ray.get(tally.retries.remote())


def _files(group: list[Render]) -> dict[str, bytes]:
    """The primers and sources of a pass, read here (a worker may be on another machine). A file
    that cannot be read travels as nothing, so its render fails there with the usual message."""
    out = {}
    for job in group:
        for path in (job.track.primer, job.track.vary):
            if path and path not in out:
                with contextlib.suppress(OSError):
                    out[path] = Path(path).read_bytes()
    return out


def render_pass(spec: Spec, group: list[Render], hashes: dict[str, str], files: dict[str, bytes],
                threads: int, on_gpu: bool, tally: Any, g: int) -> list[Any]:
    """A Ray task: one pass of the batch, computed in a worker process (its models on the GPU Ray
    gave it, if ``on_gpu``)."""
    import ray

    from bridge.batch.run import _init_worker, compute_group
    from bridge.render.generate import bundle

    ray.get(tally.started.remote(g))
    _init_worker(threads)
    if on_gpu:
        for model in {job.track.model for job in group}:
            bundle(model).stack.to("cuda")  # this worker's cached copy; the torch sampler follows it
    return compute_group(spec, group, hashes, files)


class Tally:
    """A Ray actor that counts how often each task started (more than once: retried)."""

    def __init__(self) -> None:
        self.starts: dict[int, int] = {}

    def started(self, g: int) -> None:
        """Task ``g`` has started (once more)."""
        self.starts[g] = self.starts.get(g, 0) + 1

    def retries(self) -> int:
        """How many starts were second or later ones."""
        return sum(n - 1 for n in self.starts.values())
