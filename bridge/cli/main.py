"""The ``wavestack`` command: one module per subcommand (models, generate, bench, serve, render,
batch, merge), each with ``add_parser`` and ``run``.

Torch and the engine are imported inside the commands that need them, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import sys

from bridge import __version__
from bridge.cli import batch, bench, generate, merge, models, render, serve

EPILOG = """examples:
  wavestack models
  wavestack generate --seconds 4 --seed 7 --out take.wav
  wavestack generate --model default --seconds 2 --batch 4 --temperature 0.9 --out var.wav
  wavestack bench
  wavestack serve --project ~/Music/song            # OSC on udp://127.0.0.1:9000
  wavestack render --project ~/Music/song --track keys
"""

COMMANDS = {"models": models, "generate": generate, "bench": bench, "serve": serve, "render": render,
            "batch": batch, "merge": merge}


def build_parser() -> argparse.ArgumentParser:
    """The `wavestack` argument parser, one subcommand each."""
    parser = argparse.ArgumentParser(
        prog="wavestack",
        description="Neural audio generator: sample raw audio from hierarchical WaveNet models.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"wavestack {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for command in COMMANDS.values():
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run `wavestack` with ``argv``; returns the exit status."""
    args = build_parser().parse_args(argv)
    from engine.errors import EngineError

    try:
        if getattr(args, "plugin_path", None):
            from bridge.render.pluginhost import add_folders

            add_folders(args.plugin_path)
        if getattr(args, "memory_limit", None) is not None:
            from bridge.render.memory import set_limit

            set_limit(args.memory_limit)
        return COMMANDS[args.command].run(args)
    except (EngineError, OSError, ValueError) as exc:
        print(f"wavestack: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wavestack: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
