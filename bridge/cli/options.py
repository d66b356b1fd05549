"""Options several subcommands share."""

from __future__ import annotations

import argparse


def plugin_path(parser: argparse.ArgumentParser) -> None:
    """``--plugin-path DIR`` (repeatable): a folder VST3 plugins may load from, besides the standard ones."""
    parser.add_argument("--plugin-path", action="append", default=[], metavar="DIR",
                        help="a folder of VST3 plugins to allow besides the standard ones "
                             "(~/.vst3, /usr/lib/vst3, /usr/local/lib/vst3 on Linux); repeatable")


def memory_limit(parser: argparse.ArgumentParser) -> None:
    """``--memory-limit GB``: a render that would need more memory is refused before it starts."""
    parser.add_argument("--memory-limit", type=float, metavar="GB",
                        help="refuse, before it starts, a render whose estimated memory is more than "
                             "this many gigabytes (default: half this machine's memory)")
