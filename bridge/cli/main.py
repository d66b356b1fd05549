"""The ``wavestack`` command: list models, generate audio, measure speed.

Torch and the engine are imported inside the commands that need them, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from pathlib import Path

from bridge import __version__
from bridge.protocol import DAWS

EPILOG = """examples:
  wavestack models
  wavestack generate --seconds 4 --seed 7 --out take.wav
  wavestack generate --model default --seconds 2 --batch 4 --temperature 0.9 --out var.wav
  wavestack bench
  wavestack serve --project ~/Music/song            # OSC on udp://127.0.0.1:9000
  wavestack render --project ~/Music/song --track keys
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wavestack",
        description="Neural audio generator: sample raw audio from hierarchical WaveNet models.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"wavestack {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("models", help="list installed model bundles (name, levels, rate, trained?, size)")

    gen = sub.add_parser(
        "generate",
        help="sample audio from a model into a WAV file",
        description="Sample SECONDS of audio from a model and write 32-bit float WAV at the model's "
        "rate. With --batch B > 1, writes B files NAME_1.wav … NAME_B.wav. The model, its hash, "
        "the seed and every parameter are stored in the WAV's comment so a take can be remade.",
    )
    gen.add_argument("--model", default="default", help="bundle name or directory (default: default)")
    gen.add_argument("--seconds", type=float, required=True, help="length of audio, in (0, 3600]")
    gen.add_argument("--seed", type=int, help="random seed in [0, 2^63); random (and printed) if omitted")
    gen.add_argument("--temperature", type=float, default=1.0, help="softmax temperature in (0, 10]")
    gen.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass in (0, 1]")
    gen.add_argument("--batch", type=int, default=1, help="number of variations sampled together")
    gen.add_argument("--sampler", choices=("auto", "torch", "numpy", "fast"), default="auto",
                     help="sampling loop: fast (compiled, the CPU default), numpy, or torch (any device; "
                          "the GPU default)")
    gen.add_argument("--out", type=Path, required=True, help="output .wav path")
    gen.add_argument("--overwrite", action="store_true", help="replace existing output files")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")

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
    bench.add_argument("--batch-seconds", type=float, default=10.0, help="audio seconds per batch render")

    serve = sub.add_parser(
        "serve",
        help="run the OSC server a DAW, Max/Pd patch or wavestack-ui controls",
        description="Listen for OSC over UDP (addresses under /wavestack, see the README) and render "
        "stems into the project folder. Binds loopback unless --host says otherwise. Ctrl-C or "
        "SIGTERM cancels the running render (nothing partial is written) and exits.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=9000, help="UDP port (default 9000; 0 = any free)")
    serve.add_argument("--oscquery-port", type=int, default=None, metavar="TCP_PORT",
                       help="OSCQuery HTTP port on the same host (default: the OSC port number, TCP)")
    serve.add_argument("--no-oscquery", action="store_true", help="no OSCQuery HTTP server")
    serve.add_argument("--follow", choices=DAWS,
                       help="follow this DAW's tempo, meter and transport over OSC (see the README)")
    serve.add_argument("--daw-port", type=int, default=0, metavar="UDP_PORT",
                       help="port the DAW sends to (default: REAPER/Ardour 9010, Ableton 11001)")
    serve.add_argument("--daw-send-port", type=int, default=0, metavar="UDP_PORT",
                       help="port the DAW listens on (default: REAPER 8000, Ardour 3819, AbletonOSC 11000)")
    serve.add_argument("--advertise", action="store_true",
                       help="announce the OSC and OSCQuery ports over Zeroconf/mDNS (off by default)")
    serve.add_argument("--project", help="project folder to start with (else set it over OSC)")
    serve.add_argument("--quiet", action="store_true", help="log warnings only, not every request")

    render = sub.add_parser(
        "render",
        help="render a saved session's tracks without the server",
        description="Render the session the server saved in the project folder (wavestack-session.json), "
        "or another session file: every track and the mix, or only the --track ones.",
    )
    render.add_argument("--project", required=True, help="project folder")
    render.add_argument("--session", type=Path, help="session JSON (default: PROJECT/wavestack-session.json)")
    render.add_argument("--track", action="append", default=[], help="render only this track (repeatable)")
    render.add_argument("--quiet", action="store_true", help="no progress bar")

    batch = sub.add_parser(
        "batch",
        help="render every variation a spec file lists (resumable, parallel, shardable)",
        description="Expand SPEC (TOML: a [session] and [[tracks]] with seeds, temperatures, top_ps, "
        "primers or sources to combine), check all of it, then render what the project manifest "
        "does not have yet. See examples/batch.toml.",
    )
    batch.add_argument("spec", type=Path, help="batch spec (TOML)")
    batch.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    batch.add_argument("--shard", default="1/1", help="render shard K of N (e.g. 2/4), default 1/1")
    batch.add_argument("--dry-run", action="store_true", help="list the renders and estimate the time")
    batch.add_argument("--quiet", action="store_true", help="no progress bar")

    merge = sub.add_parser(
        "merge",
        help="merge project folders (e.g. batch shards) into one",
        description="Copy every rendered take of the SOURCE projects into TARGET under new take numbers, "
        "with their manifest entries and the REAPER project. The same render twice is skipped; the same "
        "render with different audio is refused and nothing is copied.",
    )
    merge.add_argument("target", help="project folder to merge into (created if missing)")
    merge.add_argument("sources", nargs="+", help="project folders to merge from")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from engine.errors import EngineError

    try:
        commands = {"models": cmd_models, "generate": cmd_generate, "bench": cmd_bench,
                    "serve": cmd_serve, "render": cmd_render, "batch": cmd_batch, "merge": cmd_merge}
        return commands[args.command](args)
    except (EngineError, OSError, ValueError) as exc:
        print(f"wavestack: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wavestack: interrupted", file=sys.stderr)
        return 130


def cmd_models(args: argparse.Namespace) -> int:
    from engine.catalog import installed_models, read_manifest, user_models_dir

    rows = [("NAME", "LEVELS", "RATE", "TRAINED", "SIZE", "PATH")]
    for name, path in installed_models().items():
        size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
        try:
            meta = read_manifest(path)
            levels = str(len(meta["config"]["levels"]))
            rate, trained = f"{meta['sample_rate']} Hz", "yes" if meta["trained"] else "no"
        except Exception as exc:  # a broken bundle is listed, not fatal
            levels, rate, trained = "?", "?", f"broken: {exc}"
        rows.append((name, levels, rate, trained, f"{size / 1e6:.1f} MB", str(path)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
    print(f"(user models directory: {user_models_dir()})")
    return 0


def output_paths(out: Path, batch: int) -> list[Path]:
    if out.suffix.lower() != ".wav":
        raise OSError(f"--out must name a .wav file, got {out}")
    if batch == 1:
        return [out]
    return [out.with_name(f"{out.stem}_{i + 1}{out.suffix}") for i in range(batch)]


def cmd_generate(args: argparse.Namespace) -> int:
    from bridge.cli.progress import ProgressBar
    from engine import load_bundle
    from engine.wavfile import write_wav_atomic

    paths = output_paths(args.out, args.batch)
    existing = [str(p) for p in paths if p.exists()]
    if existing and not args.overwrite:
        raise OSError(f"{', '.join(existing)} already exists; pass --overwrite or choose --out")
    seed = args.seed if args.seed is not None else secrets.randbelow(2**63)
    bundle = load_bundle(args.model)
    bundle.stack.sampler = args.sampler
    if not bundle.trained:
        print(f"note: model '{bundle.name}' is untrained (random weights): expect noise-like audio",
              file=sys.stderr)
    start = time.perf_counter()
    with ProgressBar(f"generate {args.seconds:g}s", disable=args.quiet) as bar:
        audio = bundle.stack.sample(
            args.seconds, seed=seed, temperature=args.temperature, top_p=args.top_p,
            batch=args.batch, progress=bar.update,
        )
    elapsed = time.perf_counter() - start
    record = {
        "model": bundle.name, "model_hash": bundle.hash, "seed": seed, "seconds": args.seconds,
        "temperature": args.temperature, "top_p": args.top_p, "batch": args.batch,
        "sampler": args.sampler, "sample_rate": bundle.sample_rate, "wavestack": __version__,
    }
    for i, path in enumerate(paths):
        # the early existence check spares a render; the no-clobber link at write time is the guarantee
        write_wav_atomic(path, audio[i], bundle.sample_rate, overwrite=args.overwrite,
                         comment=json.dumps({**record, "index": i}, sort_keys=True))
        print(f"wrote {path}")
    print(f"seed {seed}; {args.seconds * args.batch:g} s of audio in {elapsed:.1f} s "
          f"(real-time factor {elapsed / args.seconds:.2f})")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from engine import bench, load_bundle

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
        _bench_batch(args.model, args.batch_renders, args.batch_seconds)
    return 0


def _bench_batch(model: str, renders: int, seconds: float) -> None:
    """Batch throughput (audio seconds per wall second) with one and two worker processes."""
    import tempfile

    from bridge.batch.run import run_batch
    from bridge.batch.spec import load_spec

    for jobs in (1, 2):
        with tempfile.TemporaryDirectory(prefix="wavestack-bench-") as tmp:
            spec = Path(tmp) / "spec.toml"
            spec.write_text(f'[session]\nproject = "out"\n[[tracks]]\nname = "bench"\n'
                            f"model = {json.dumps(model)}\nseconds = {seconds}\n"
                            f"seeds = {list(range(1, renders + 1))}\n")
            summary = run_batch(load_spec(spec), workers=jobs, show_progress=False, log=lambda _: None)
            audio = sum(o.seconds for o in summary.outcomes if o.ok)
            label = f"batch, {renders} renders of {seconds:g} s, --jobs {jobs} (incl. worker start-up)"
            print(f"  {label:<60} {audio / summary.wall:>12,.2f} audio s / wall s")



def cmd_serve(args: argparse.Namespace) -> int:
    import logging
    import signal

    from bridge.osc.server import Server

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    oscquery = None if args.no_oscquery else (args.port if args.oscquery_port is None else args.oscquery_port)
    try:
        server = Server(args.host, args.port, args.project, oscquery_port=oscquery)
    except OSError as exc:
        print(f"wavestack serve: cannot listen on {args.host} (OSC udp {args.port}, OSCQuery tcp "
              f"{oscquery}): {exc.strerror}; pick another --port or --oscquery-port, or --no-oscquery",
              file=sys.stderr)
        return 2
    if args.follow:
        try:
            server.handlers.follow({"daw": args.follow, "listen_port": args.daw_port,
                                    "send_port": args.daw_send_port}, server.reply_to(None))
        except ValueError as exc:
            print(f"wavestack serve: {exc}", file=sys.stderr)
            server.shutdown()
            return 2
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        logging.warning("listening on %s: other machines can reach this server", args.host)

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    advertiser = None
    try:
        if args.advertise:
            from bridge.osc.advertise import Advertiser

            http_port = server.oscquery.address[1] if server.oscquery is not None else None
            try:
                advertiser = Advertiser(args.host, server.address[1], http_port)
            except Exception as exc:  # zeroconf raises several kinds when no interface can multicast
                logging.warning("cannot advertise over Zeroconf: %s (the server runs without it)", exc)
        server.serve_forever()
    except KeyboardInterrupt:
        logging.info("stopping: cancelling queued and running renders")
    finally:
        if advertiser is not None:
            advertiser.close()
        server.shutdown()
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from bridge.cli.progress import ProgressBar
    from bridge.render.project import SESSION_FILE, Project
    from bridge.render.stems import mix, render_tracks
    from bridge.session import Session

    project = Project(args.project)
    source = args.session or project.root / SESSION_FILE
    try:
        session = Session.from_dict(json.loads(Path(source).read_text()))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source} is not valid JSON: {exc}") from None
    session.project = str(project.root)
    tracks = [session.track(name) for name in args.track] if args.track else session.tracks
    if not tracks:
        raise ValueError(f"{source} has no tracks")
    with ProgressBar("render", disable=args.quiet) as bar:  # everything is checked before any audio
        stems = render_tracks(session, tracks, project, progress=bar.update)
    for stem in stems:
        print(f"{stem.path} (seed {stem.seed})")
    if not args.track:
        print(mix(session, project, stems).path)
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from bridge.render.merge import merge

    written = merge(args.target, args.sources)
    for path in written:
        print(path)
    print(f"merged {len(written)} file(s) into {args.target}")
    return 0


def parse_shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard takes K/N (e.g. 2/4), got {text!r}") from None
    if not 1 <= k <= n:
        raise ValueError(f"--shard K/N needs 1 ≤ K ≤ N, got {text!r}")
    return k, n


def cmd_batch(args: argparse.Namespace) -> int:
    from bridge.batch.run import pending, run_batch
    from bridge.batch.spec import load_spec

    shard = parse_shard(args.shard)
    if args.jobs < 1:
        raise ValueError(f"--jobs must be ≥ 1, got {args.jobs}")
    spec = load_spec(args.spec)
    if args.dry_run:
        return _dry_run(spec, shard, args.jobs, pending)
    summary = run_batch(spec, workers=args.jobs, shard=shard, show_progress=not args.quiet)
    print(summary.table())
    return 1 if summary.failed else 0


def _dry_run(spec, shard: tuple[int, int], jobs: int, pending) -> int:
    from bridge.render.generate import bundle

    selected = spec.shard(*shard)
    todo = {j.index for j in pending(spec, selected)}
    rtf: dict[str, float] = {}
    for job in selected:  # calibrate: time one short sample per model
        if job.track.model not in rtf:
            stack = bundle(job.track.model).stack
            t0 = time.perf_counter()
            stack.sample(0.25, seed=0)
            rtf[job.track.model] = (time.perf_counter() - t0) / 0.25
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
    print(f"{len(todo)} of {len(selected)} renders to do; about {total / jobs:.0f} s with {jobs} "
          f"worker(s) (calibrated: {', '.join(f'{m} RTF {r:.2f}' for m, r in rtf.items())})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
