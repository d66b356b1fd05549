"""`wavestack batch`: render a spec file."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from bridge.cli import options


def add_parser(sub: Any) -> None:
    """The subcommand's arguments."""
    batch = sub.add_parser(
        "batch",
        help="render every variation a spec file lists (resumable, parallel, shardable, on Ray)",
        description="Expand SPEC (TOML: a [session] and [[tracks]] with seeds, temperatures, top_ps, "
        "primers or sources to combine), check all of it, then render what the project manifest "
        "does not have yet. See examples/batch.toml. Renders are computed by --jobs local worker "
        "processes or by Ray tasks (--ray); this command alone writes the project folder.",
    )
    batch.add_argument("spec", type=Path, help="batch spec (TOML)")
    batch.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    batch.add_argument("--shard", default="1/1", help="render shard K of N (e.g. 2/4), default 1/1")
    batch.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                       help="compute the renders as Ray tasks: alone, on a Ray started on this machine; "
                       "'auto' for the cluster this machine belongs to (ray start); 'ray://HOST:10001' "
                       "for a remote one. Needs pip install \"wavestack[ray]\"")
    batch.add_argument("--cpus-per-task", type=int, default=1, metavar="N",
                       help="with --ray: CPU threads each render pass takes (default 1)")
    batch.add_argument("--gpus-per-task", type=float, default=0.0, metavar="F",
                       help="with --ray: run each pass on a GPU worker, taking this share of a GPU "
                       "(e.g. 0.5; default 0: CPU). GPU audio is not bit-identical to CPU audio")
    batch.add_argument("--dry-run", action="store_true", help="list the renders and estimate the time")
    batch.add_argument("--quiet", action="store_true", help="no progress bar")
    options.plugin_path(batch)
    options.memory_limit(batch)


def parse_shard(text: str) -> tuple[int, int]:
    """``k/n`` from the command line, checked."""
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard takes K/N (e.g. 2/4), got {text!r}") from None
    if not 1 <= k <= n:
        raise ValueError(f"--shard K/N needs 1 ≤ K ≤ N, got {text!r}")
    return k, n


def ray_options(address: str, cpus: int, gpus: float = 0.0) -> Any:
    """``--ray [ADDRESS]``, ``--cpus-per-task`` and ``--gpus-per-task``, checked."""
    from bridge.batch.onray import RayOptions, require_ray

    require_ray(local=address == "local")
    if cpus < 1:
        raise ValueError(f"--cpus-per-task must be ≥ 1, got {cpus}")
    if not 0 <= gpus <= 8:
        raise ValueError(f"--gpus-per-task must be in [0, 8], got {gpus:g}")
    if address not in ("local", "auto") and not address.startswith("ray://"):
        raise ValueError(f"--ray takes nothing, 'auto' or ray://HOST:PORT, got {address!r}")
    return RayOptions(address=None if address == "local" else address, cpus=cpus, gpus=gpus)


def run(args: argparse.Namespace) -> int:
    """`wavestack batch`: render a spec file (or show what it would do)."""
    from bridge.batch.run import pending, run_batch
    from bridge.batch.spec import load_spec

    shard = parse_shard(args.shard)
    if args.jobs < 1:
        raise ValueError(f"--jobs must be ≥ 1, got {args.jobs}")
    ray = ray_options(args.ray, args.cpus_per_task, args.gpus_per_task) if args.ray is not None else None
    if args.ray is None and args.gpus_per_task:
        raise ValueError("--gpus-per-task is for --ray")
    if ray is not None and args.jobs != 1:
        raise ValueError("give --jobs or --ray, not both (with --ray, Ray places the work)")
    spec = load_spec(args.spec)
    if args.dry_run:
        return _dry_run(spec, shard, args.jobs, pending)
    summary = run_batch(spec, workers=args.jobs, shard=shard, ray=ray, show_progress=not args.quiet)
    print(summary.table())
    return 1 if summary.failed else 0


def _dry_run(spec, shard: tuple[int, int], jobs: int, pending) -> int:
    from bridge.render.generate import bundle

    selected = spec.shard(*shard)
    todo = {j.index for j in pending(spec, selected)}
    from bridge.batch.run import group_jobs

    rtf: dict[str, float] = {}
    pending_jobs = [j for j in selected if j.index in todo]
    groups = group_jobs(spec, pending_jobs, max_rows=max(1, -(-len(pending_jobs) // jobs)))
    rows = max((len(g) for g in groups), default=1)
    for job in selected:  # calibrate on a warm model with passes as wide as the batch will run
        if job.track.model not in rtf:
            stack = bundle(job.track.model).stack
            stack.sample(0.05, seed=0)  # loads and compiles what the first call needs
            t0 = time.perf_counter()
            stack.sample(0.5, seed=list(range(rows)))
            rtf[job.track.model] = (time.perf_counter() - t0) / (0.5 * rows)  # per audio second of a row
    total = 0.0
    for job in selected:
        t = job.track
        seconds = spec.session.length_of(t)
        extra = f" primer={t.primer}" if t.primer else f" source={t.vary}" if t.vary else ""
        state = "todo" if job.index in todo else "done"
        print(f"#{job.index:<4} {state:4} {t.name:16} seed={t.seed} temperature={t.temperature} "
              f"top_p={t.top_p} {seconds:.2f} s{extra}")
        if job.index in todo:
            total += seconds * rtf[t.model]
    print(f"stems go to {spec.session.project}/Audio (the spec's project folder, relative to the spec)")
    print(f"{len(todo)} of {len(selected)} renders to do; about {total / jobs:.0f} s with {jobs} "
          f"worker(s) (calibrated: {', '.join(f'{m} RTF {r:.2f}' for m, r in rtf.items())})")
    return 0
