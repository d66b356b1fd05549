"""`wavestack models`: list the installed model bundles."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    """The subcommand's arguments."""
    sub.add_parser("models", help="list installed model bundles (name, levels, rate, trained?, size)")


def run(args: argparse.Namespace) -> int:
    """`wavestack models`: the installed bundles."""
    from engine.catalog import installed_models, read_manifest, user_models_dir

    rows = [("NAME", "LEVELS", "RATE", "TRAINED", "SIZE", "PATH")]
    for name, path in installed_models().items():
        size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
        try:
            meta = read_manifest(path)
            levels = str(len(meta["config"]["levels"]))
            rate, trained = f"{meta['sample_rate']} Hz", _trained(meta)
        except Exception as exc:  # a broken bundle is listed, not fatal
            levels, rate, trained = "?", "?", f"broken: {exc}"
        rows.append((name, levels, rate, trained, f"{size / 1e6:.1f} MB", str(path)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
    print(f"(user models directory: {user_models_dir()})")
    return 0


def _trained(meta: dict[str, Any]) -> str:
    """How much training a bundle had, as its provenance records it (steps per stage, counting
    those of the bundle it went on from)."""
    if not meta["trained"]:
        return "no (random weights)"
    provenance = meta.get("provenance") or {}
    steps = provenance.get("total_steps") or provenance.get("steps") or {}
    if not isinstance(steps, dict) or not steps:
        return "yes"
    counts = ", ".join(f"{stage} {n:,}" for stage, n in steps.items() if isinstance(n, int))
    return f"yes: {counts} steps"
