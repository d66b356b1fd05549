"""Options several subcommands share."""

from __future__ import annotations

import argparse


def plugin_path(parser: argparse.ArgumentParser) -> None:
    """``--plugin-path DIR`` (repeatable): a folder VST3 plugins may load from, besides the standard ones."""
    parser.add_argument("--plugin-path", action="append", default=[], metavar="DIR",
                        help="a folder of VST3 plugins to allow besides the standard ones "
                             "(~/.vst3, /usr/lib/vst3, /usr/local/lib/vst3 on Linux); repeatable")
