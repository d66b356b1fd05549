"""``wavestack-train``: build the corpus, fit a stack, evaluate a bundle, export a run."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

DESCRIPTION = """\
Train wavestack models on your own audio.

  corpus bach  render the Bach chorales shipped with music21 to a 16 kHz piano corpus
  fit          train every stage of a stack config (resumes a killed run; works under torchrun)
  eval         held-out metrics of a bundle: bits/sample, bits/code, codebook usage, STFT distance
  export       write a finished run as a model bundle the engine loads
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wavestack-train", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    corpus = sub.add_parser("corpus", help="build a training corpus")
    corpus.add_argument("which", choices=["bach"], help="which corpus (bach: music21's chorales)")
    corpus.add_argument("--out", type=Path, required=True,
                        help="folder to write train/, heldout/ and corpus.json")
    corpus.add_argument("--soundfont", type=Path, help="GM soundfont (.sf2); default: Debian's FluidR3 GM, "
                        "else the TimGM6mb.sf2 in the pretty_midi wheel")
    corpus.add_argument("--limit", type=int, help="render only the first N scores (by file name)")
    corpus.add_argument("--quiet", action="store_true", help="no progress bar")

    fit = sub.add_parser("fit", help="train (or resume) every stage of a stack",
                         description="Train level 1, encode the data, level 2, ..., the prior (and the "
                         "optional baseline). Running it again on the same --run resumes.")
    fit.add_argument("--config", type=Path, required=True, help="stack config (TOML); see training/configs/")
    fit.add_argument("--data", type=Path, required=True, help="folder of WAV/FLAC/OGG files (recursive)")
    fit.add_argument("--run", "--run-dir", dest="run", type=Path, required=True,
                     help="run directory (checkpoints, codes, logs); under torchrun spell it --run-dir, "
                     "since torchrun's own parser takes --run for its --run-path")
    fit.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config value, e.g. --set stages.level1.steps=500 (repeatable)")
    fit.add_argument("--init", metavar="BUNDLE",
                     help="start every stage from this bundle's weights (same stack config): train a "
                     "shipped model further; the bundle's own training history is kept in the export")
    fit.add_argument("--reuse", metavar="RUN",
                     help="take the finished level stages of another run that were trained exactly as "
                     "this config would (same levels so far, stage settings, seed, data): compare "
                     "recipes for the levels above without training the ones below again")
    fit.add_argument("--until", metavar="STAGE",
                     help="stop after this stage (e.g. level1, for a quick comparison of recipes)")
    fit.add_argument("--quiet", action="store_true", help="no progress bars")

    ev = sub.add_parser("eval", help="held-out metrics of a model bundle or a run's finished stages",
                        description="Measure a bundle (or the finished stages of a run directory, e.g. "
                        "after fit --until level1) on held-out audio, each figure next to its references: "
                        "linear prediction and n-gram coders, the μ-law round trip, white noise.")
    ev.add_argument("bundle", help="bundle name or directory, or a run directory")
    ev.add_argument("--data", type=Path, required=True, help="held-out audio folder")
    ev.add_argument("--baseline", type=Path,
                    help="run directory whose finished baseline stage to compare with")
    ev.add_argument("--max-seconds", type=float, default=120.0, help="held-out audio to use (default 120)")
    ev.add_argument("--decode-seconds", type=float, default=8.0,
                    help="audio sampled from the true codes of each level for the reconstruction "
                    "figures (default 8)")
    ev.add_argument("--generate-seconds", type=float, default=20.0,
                    help="audio generated from scratch for the music-likeness figures (default 20; 0: skip)")
    ev.add_argument("--seed", type=int, default=1, help="seed of the sampled parts (default 1)")
    ev.add_argument("--seeds", type=int, default=3,
                    help="renders generated from scratch, seeds SEED, SEED+1, …: their figures are averaged "
                         "(one seed says little: default 3)")
    ev.add_argument("--temperature", type=float,
                    help="sampling temperature of the generated audio (default: the bundle's, else 1)")
    ev.add_argument("--top-p", type=float,
                    help="top-p of the generated audio (default: the bundle's, else 1); compare settings "
                    "by their figures and clips, not their numbers alone")
    ev.add_argument("--json", type=Path, help="also write the metrics to this file")
    ev.add_argument("--figures", type=Path, metavar="DIR",
                    help="write the clips (original, μ-law, reconstructions, generated, white noise) as "
                    "WAV files and their spectrograms as spectrograms.png into DIR")
    ev.add_argument("--quiet", action="store_true", help="no progress bars")

    ex = sub.add_parser("export", help="write a finished run as a model bundle")
    ex.add_argument("run", type=Path, help="run directory")
    ex.add_argument("--name", required=True, help="bundle name (letters, digits, _ . -)")
    ex.add_argument("--out", type=Path, help="bundle directory (default: the user models folder / NAME)")
    ex.add_argument("--metrics", type=Path,
                    help="metrics JSON written by `eval --json` to record in the bundle")
    ex.add_argument("--temperature", type=float,
                    help="the sampling temperature the model was measured with: new tracks start from it "
                         "(default 1)")
    ex.add_argument("--top-p", type=float,
                    help="the top-p the model was measured with: new tracks start from it (default 1)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    from engine.errors import EngineError

    try:
        return COMMANDS[args.command](args)
    except EngineError as exc:
        print(f"wavestack-train {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # a stop asked for: what was kept, if the stop says
        print(f"wavestack-train {args.command}: {exc or 'interrupted'}", file=sys.stderr)
        return 130


def _corpus(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .corpus import bach_scores, build_bach

    total = len(bach_scores(args.limit))
    with tqdm(total=total, desc="render", unit="score", disable=args.quiet) as bar:
        manifest = build_bach(args.out, soundfont=args.soundfont, limit=args.limit,
                              on_file=lambda _entry: bar.update(1))
    seconds = manifest["seconds"]
    print(f"{args.out}: {len(manifest['files'])} files, train {seconds['train']} s, "
          f"held-out {seconds['heldout']} s, {len(manifest['skipped'])} scores skipped")
    return 0


def _fit(args: argparse.Namespace) -> int:
    from .config import load
    from .trainer import fit, stop_on_signals

    cfg = load(args.config, args.overrides)
    stop_on_signals()  # a stop asked for (SIGTERM, Ctrl-C) writes the running stage's checkpoint first
    command = shlex.join(["wavestack-train", *args.argv])
    manifest = fit(cfg, args.data, args.run, show_progress=not args.quiet, command=command,
                   until=args.until, init=args.init, reuse=args.reuse)
    done = "all stages" if args.until is None else f"stages up to {args.until}"
    print(f"{args.run}: {done} finished ({', '.join(manifest['config']['stages'])})")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate, evaluate_run

    options = dict(max_seconds=args.max_seconds, decode_seconds=args.decode_seconds,
                   generate_seconds=args.generate_seconds, seed=args.seed, seeds=args.seeds,
                   show_progress=not args.quiet,
                   figures=args.figures, temperature=args.temperature, top_p=args.top_p)
    if (Path(args.bundle) / "run.json").is_file():
        if args.baseline:
            print("wavestack-train eval: --baseline is for bundles; a run directory's own baseline is used",
                  file=sys.stderr)
            return 2
        metrics = evaluate_run(Path(args.bundle), args.data, **options)
    else:
        metrics = evaluate(args.bundle, args.data, baseline_run=args.baseline, **options)
    text = json.dumps(metrics, indent=1)
    if args.json:
        from .jsonfile import write_json_atomic

        write_json_atomic(args.json, metrics)
    print(text)
    return 0


def _export(args: argparse.Namespace) -> int:
    from .export import export

    sampling = {k: v for k, v in (("temperature", args.temperature), ("top_p", args.top_p)) if v is not None}
    path = export(args.run, name=args.name, out=args.out, metrics_file=args.metrics, sampling=sampling)
    print(f"wrote {path}")
    return 0


COMMANDS = {"corpus": _corpus, "fit": _fit, "eval": _eval, "export": _export}


if __name__ == "__main__":
    raise SystemExit(main())
