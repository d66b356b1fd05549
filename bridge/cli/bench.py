"""`wavestack bench`: speed figures of the samplers and a model."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    """The subcommand's arguments."""
    bench = sub.add_parser(
        "bench",
        help="measure sampling speed of a model (samples/s, real-time factor)",
        description="For a reference R32/S128/L20 decoder and the model's bottom decoder: naive "
        "recompute vs cached incremental sampling (torch, numpy, fast) at batch 1 on one thread, "
        "the fast path's GFLOP/s next to a measured matrix-vector rate, batch-16 throughput on 1 and 2 "
        "threads; then the real-time factor of generating SECONDS through all levels.",
    )
    bench.add_argument("--model", default="default", help="bundle name or directory")
    bench.add_argument("--threads", type=int, default=1,
                       help="CPU threads for the real-time factor (default 1; the rates set their own)")
    bench.add_argument("--naive-steps", type=int, default=300, help="samples for the naive rate")
    bench.add_argument("--steps", type=int, default=4000, help="samples for the cached rates")
    bench.add_argument("--seconds", type=float, default=10.0, help="audio length for the RTF (default 10)")
    bench.add_argument("--batch-renders", type=int, default=4,
                       help="renders of the batch throughput check, with --jobs 1 and 2 (0: skip)")
    bench.add_argument("--batch-ray", action="store_true",
                       help="also measure the batch on a Ray started on this machine (needs wavestack[ray])")
    bench.add_argument("--batch-seconds", type=float, default=10.0, help="audio seconds per batch render")
    bench.add_argument("--reliability", action="store_true",
                       help="instead: what the server and renders hold (a burst of pings, reply "
                            "amplification, peak memory of renders)")
    bench.add_argument("--burst", type=int, default=20000, metavar="N",
                       help="pings in the burst (default 20000)")
    bench.add_argument("--memory-seconds", default="10,60,180", metavar="S,S,…",
                       help="render lengths whose peak memory is measured (default 10,60,180)")
    bench.add_argument("--primer-seconds", type=float, default=120.0,
                       help="length of the primer whose continuation's memory is measured (0: skip)")


def run(args: argparse.Namespace) -> int:
    """`wavestack bench`: speed figures of the samplers and the default model."""
    if args.reliability:
        from bridge.cli import reliability

        try:
            lengths = [float(s) for s in args.memory_seconds.split(",") if s.strip()]
        except ValueError:
            raise ValueError("--memory-seconds takes numbers separated by commas, "
                             f"got {args.memory_seconds!r}") from None
        if args.burst < 1 or any(s <= 0 for s in lengths) or args.primer_seconds < 0:
            raise ValueError("--burst must be ≥ 1, --memory-seconds > 0, --primer-seconds ≥ 0")
        reliability.run(args.model, args.burst, lengths, args.primer_seconds)
        return 0
    import torch

    from engine import bench, load_bundle

    if args.seconds <= 0 or args.batch_seconds <= 0 or args.steps < 1 or args.naive_steps < 1:
        raise ValueError("--seconds and --batch-seconds must be > 0, --steps and --naive-steps ≥ 1")
    if args.threads < 1 or args.threads > (os.cpu_count() or 1):
        raise OSError(f"--threads must be in [1, {os.cpu_count()}], got {args.threads}")
    torch.set_num_threads(args.threads)
    bundle = load_bundle(args.model)
    print(f"model {bundle.name} ({bundle.hash[:12]}), {bench.machine()}")
    bench.run(
        bundle, naive_steps=args.naive_steps, steps=args.steps, seconds=args.seconds,
        report=lambda r: print(f"  {r.label:<60} {r.value:>12,.2f} {r.unit}"),
    )
    if args.batch_renders > 0:
        _bench_batch(args.model, args.batch_renders, args.batch_seconds, args.batch_ray)
    return 0


def _bench_batch(model: str, renders: int, seconds: float, on_ray: bool) -> None:
    """Batch throughput (audio seconds per wall second) with one and two worker processes, and on
    a local Ray (each render pass a task on one CPU)."""
    import tempfile

    from bridge.batch.onray import RayOptions, require_ray
    from bridge.batch.run import run_batch
    from bridge.batch.spec import load_spec

    if on_ray:
        require_ray(local=True)
    for jobs in (1, 2, "ray") if on_ray else (1, 2):
        with tempfile.TemporaryDirectory(prefix="wavestack-bench-") as tmp:
            spec = Path(tmp) / "spec.toml"
            spec.write_text(f'[session]\nproject = "out"\n[[tracks]]\nname = "bench"\n'
                            f"model = {json.dumps(model)}\nseconds = {seconds}\n"
                            f"seeds = {list(range(1, renders + 1))}\n")
            ray = RayOptions() if jobs == "ray" else None
            summary = run_batch(load_spec(spec), workers=1 if ray else int(jobs), ray=ray,
                                show_progress=False, log=lambda _: None)
            audio = sum(o.seconds for o in summary.outcomes if o.ok)
            how = "--ray (local, incl. Ray start-up)" if ray else f"--jobs {jobs} (incl. worker start-up)"
            label = f"batch, {renders} renders of {seconds:g} s, {how}"
            rate = audio / summary.wall  # (3 significant figures: tiny renders under load are slow)
            print(f"  {label:<60} {float(f'{rate:.3g}'):>12,} audio s / wall s")
            failed = [o for o in summary.outcomes if not o.ok]
            if failed:  # a rate that leaves renders out says so, and why
                print(f"  ({len(failed)} of {renders} renders failed: {failed[0].reason})")
