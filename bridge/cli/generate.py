"""`wavestack generate`: sample audio from a model into WAV files."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bridge import __version__
from bridge.cli import options
from bridge.protocol import BY_PATH, PREFIX

MAX_SECONDS = 3600


def add_parser(sub: Any) -> None:
    """The subcommand's arguments."""
    gen = sub.add_parser(
        "generate",
        help="sample audio from a model into a WAV file",
        description="Sample SECONDS of audio from a model and write 32-bit float WAV at the model's "
        "rate. With --batch B > 1, writes B files NAME_1.wav … NAME_B.wav. The model, its hash, "
        "the seed and every parameter are stored in the WAV's comment so a take can be remade. "
        "A model's level may render with its own sampling (the default's level 1 does: open where "
        "it plays quietly, sharper where it plays loud); temperature and top-p then choose the "
        "notes its prior draws.",
    )
    gen.add_argument("--model", default="default", help="bundle name or directory (default: default)")
    gen.add_argument("--seconds", type=float, required=True, help=f"length of audio, in (0, {MAX_SECONDS}]")
    gen.add_argument("--seed", type=int, help="random seed in [0, 2^63); random (and printed) if omitted")
    gen.add_argument("--temperature", type=float,
                     help=f"sampling temperature, {_arg('/track/temperature').allowed()} (default: the "
                          "one the model was measured with, 1 unless its bundle says)")
    gen.add_argument("--top-p", type=float,
                     help=f"nucleus sampling mass, {_arg('/track/top_p').allowed()} (default: the "
                          "model's, 1 unless its bundle says)")
    gen.add_argument("--batch", type=int, default=1, help="number of variations sampled together (default 1)")
    gen.add_argument("--sampler", choices=("auto", "torch", "numpy", "fast"), default="auto",
                     help="sampling loop: fast (compiled, the CPU default), numpy, or torch (any device; "
                          "the GPU default)")
    gen.add_argument("--out", type=Path, required=True, help="output .wav path")
    gen.add_argument("--overwrite", action="store_true", help="replace existing output files")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    options.memory_limit(gen)


def _arg(address: str) -> Any:
    return BY_PATH[PREFIX + address].args[1]


def check(args: argparse.Namespace) -> list[Path]:
    """Everything about the request that can be wrong, before any model is loaded; the output paths."""
    if not 0 < args.seconds <= MAX_SECONDS:
        raise ValueError(f"--seconds must be in (0, {MAX_SECONDS}], got {args.seconds:g}")
    if args.seed is not None and not 0 <= args.seed < 2**63:
        raise ValueError(f"--seed must be in [0, 2^63), got {args.seed}")
    for flag, address, value in (("--temperature", "/track/temperature", args.temperature),
                                 ("--top-p", "/track/top_p", args.top_p)):
        arg = _arg(address)
        if value is not None and not arg.min <= value <= arg.max:
            raise ValueError(f"{flag} must be {arg.allowed()}, got {value:g}")
    if not 1 <= args.batch <= 64:
        raise ValueError(f"--batch must be in [1, 64], got {args.batch}")
    paths = output_paths(args.out, args.batch)
    folder = args.out.parent
    if not folder.is_dir():
        raise OSError(f"--out: folder {folder} does not exist; create it first")
    try:  # a real file, as the render will write: permissions alone do not tell (/proc, a full disk)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".wavestack-probe-"):
            pass
    except OSError as exc:
        raise OSError(f"--out: cannot write in folder {folder} ({exc.strerror or exc})") from None
    existing = [str(p) for p in paths if p.exists()]
    if existing and not args.overwrite:
        raise OSError(f"{', '.join(existing)} already exists; pass --overwrite or choose --out")
    from bridge.render import memory
    from engine.catalog import read_manifest, resolve

    config = read_manifest(resolve(args.model))["config"]  # a model typo is named before anything else
    memory.check(f"generating {args.seconds:g} s" + (f" × {args.batch}" if args.batch > 1 else ""),
                 memory.render_bytes(config, args.seconds, config["sample_rate"], rows=args.batch))
    return paths


def output_paths(out: Path, batch: int) -> list[Path]:
    """The files `generate` writes for a batch of ``batch``."""
    if out.suffix.lower() != ".wav":
        raise OSError(f"--out must name a .wav file, got {out}")
    if batch == 1:
        return [out]
    return [out.with_name(f"{out.stem}_{i + 1}{out.suffix}") for i in range(batch)]


def run(args: argparse.Namespace) -> int:
    """`wavestack generate`: sample audio from a model into WAV files."""
    from bridge.cli.progress import ProgressBar
    from engine import load_bundle
    from engine.wavfile import write_wav_atomic

    paths = check(args)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**63)
    bundle = load_bundle(args.model)
    bundle.stack.sampler = args.sampler
    if args.temperature is None:
        args.temperature = bundle.sampling["temperature"]
    if args.top_p is None:
        args.top_p = bundle.sampling["top_p"]
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
          f"({_speed(elapsed, args.seconds, args.batch)})")
    return 0


def _speed(elapsed: float, seconds: float, batch: int) -> str:
    """The real-time factor in words, without the one-off cost of compiling the sampler."""
    from engine import fastpath

    compiled = fastpath.compile_seconds
    rows = f", {batch} takes generated together" if batch > 1 else ""
    text = f"real-time factor {(elapsed - compiled) / seconds:.2f}{rows}"
    if compiled:
        text += f"; plus {compiled:.0f} s compiling the sampler, once for this machine"
    return text
