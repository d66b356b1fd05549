"""`wavestack render`: render a saved session without the server."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bridge.cli import options


def add_parser(sub: Any) -> None:
    """The subcommand's arguments."""
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
    options.plugin_path(render)
    options.memory_limit(render)


def run(args: argparse.Namespace) -> int:
    """`wavestack render`: render a saved session's tracks and mix, as the server would."""
    from bridge.cli.progress import ProgressBar
    from bridge.render.project import SESSION_FILE, Claim, Project
    from bridge.render.stems import mix, render_tracks
    from bridge.session import Session

    if not Path(args.project).expanduser().is_dir():
        raise OSError(f"project folder {args.project} does not exist")
    source = args.session or Path(args.project).expanduser() / SESSION_FILE
    if not Path(source).is_file():
        raise OSError(f"{source} not found: render a session the server saved (`wavestack serve --project "
                      f"{args.project}`) or give one with --session")
    project = Project(args.project)
    try:
        session = Session.from_dict(json.loads(Path(source).read_text()))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source} is not valid JSON: {exc}") from None
    session.project = str(project.root)
    tracks = [session.track(name) for name in args.track] if args.track else session.tracks
    if not tracks:
        raise ValueError(f"{source} has no tracks")
    claim = Claim(project.root)  # no server or batch writes here meanwhile
    for path in claim.set_aside:
        print(f"{path.name} was written but not recorded by an interrupted render: moved to {path.parent}",
              file=sys.stderr)
    try:
        with ProgressBar("render", disable=args.quiet) as bar:  # everything is checked before any audio
            stems = render_tracks(session, tracks, project, progress=bar.update)
        for stem in stems:
            print(f"{stem.path} (seed {stem.seed})")
        if not args.track:
            print(mix(session, project, stems).path)
    finally:
        claim.release()
    return 0
