"""`wavestack merge`: merge project folders into one."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    """The subcommand's arguments."""
    merge = sub.add_parser(
        "merge",
        help="merge project folders (e.g. batch shards) into one",
        description="Copy every rendered take of the SOURCE projects into TARGET under new take numbers, "
        "with their manifest entries and the REAPER project. The same render twice is skipped; the same "
        "render with different audio is refused and nothing is copied.",
    )
    merge.add_argument("target", help="project folder to merge into (created if missing)")
    merge.add_argument("sources", nargs="+", help="project folders to merge from")


def run(args: argparse.Namespace) -> int:
    """`wavestack merge`: merge shard projects into one."""
    from bridge.render.merge import merge

    written = merge(args.target, args.sources)
    for path in written:
        print(path)
    print(f"merged {len(written)} file(s) into {args.target}")
    return 0
