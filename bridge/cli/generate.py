"""`wavestack generate`: sample audio from a model into WAV files."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from bridge import __version__


def add_parser(sub: Any) -> None:
    """The subcommand's arguments."""
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
