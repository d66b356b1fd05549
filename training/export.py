"""``export``: a finished run → a model bundle the engine loads, with its provenance and metrics."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import torch

from engine.bundle import components, save_bundle
from engine.catalog import user_models_dir
from engine.stack import Stack

from .checkpoint import load_checkpoint
from .config import BASELINE, parse
from .errors import RunError
from .jsonfile import read_json
from .trainer import Run


def build_stack(run: Run) -> tuple[Stack, dict[str, Any]]:
    """The run's stack with every finished stage's weights; refuses an unfinished run."""
    manifest = run.read()
    cfg = parse(manifest["config"], str(run.manifest))
    stack = Stack(cfg.stack)
    named = components(stack)
    for name in cfg.stage_names():
        if name == BASELINE:
            continue
        meta = run.stage_meta(name)
        if meta is None or not meta["done"]:
            done = 0 if meta is None else meta["step"]
            raise RunError(f"{run.root}: stage {name} is not finished ({done} of "
                           f"{cfg.stages[name].steps} steps); run `wavestack-train fit` again to finish it")
        load_checkpoint(run.checkpoint(name), named[name])
    return stack.eval(), manifest


def export(run_dir: Path, *, name: str, out: Path | None = None, metrics_file: Path | None = None,
           sampling: dict[str, float] | None = None) -> Path:
    run = Run(Path(run_dir))
    stack, manifest = build_stack(run)
    stage_meta = {n: run.stage_meta(n) for n in manifest["config"]["stages"]}
    provenance = {
        "kind": "trained with wavestack-train",
        "config": manifest["config"],
        "data": manifest["data"],
        "corpus_recipe": _corpus_recipe(Path(manifest["data"]["folder"])),
        "steps": {n: m["step"] for n, m in stage_meta.items() if m},
        "total_steps": _total_steps(manifest, stage_meta),
        "wall_seconds": {n: m["seconds"] for n, m in stage_meta.items() if m},
        "fits": manifest["fits"],
        # a run started with --init: the bundle it went on from, whose own history this extends
        **({"initialised_from": manifest["init"]} if "init" in manifest else {}),
        "git_commit": _git_commit(),
        "torch": torch.__version__,
        "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    metrics = read_json(metrics_file) if metrics_file else {}
    target = Path(out) if out else user_models_dir() / name
    return save_bundle(stack, target, name=name, trained=True, provenance=provenance, metrics=metrics,
                       sampling=sampling)


def _total_steps(manifest: dict[str, Any], stage_meta: dict[str, Any]) -> dict[str, int]:
    """Steps per stage including those of the bundle a run started from (``fit --init``)."""
    before = manifest.get("init", {}).get("provenance", {})
    earlier = before.get("total_steps", before.get("steps", {}))
    return {n: m["step"] + int(earlier.get(n, 0)) for n, m in stage_meta.items() if m}


def _corpus_recipe(data_folder: Path) -> dict[str, Any] | None:
    """The recipe of a corpus built by ``wavestack-train corpus`` (data is its train/ folder)."""
    for candidate in (data_folder / "corpus.json", data_folder.parent / "corpus.json"):
        if candidate.is_file():
            corpus = read_json(candidate)
            return {"corpus": corpus.get("corpus"), "seconds": corpus.get("seconds"),
                    "recipe": corpus.get("recipe")}
    return None


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None
