"""Two gloo processes under torchrun train the tiny stack and keep their replicas identical."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from engine import load_bundle
from training.export import export

ROOT = Path(__file__).parents[2]


def test_fit_under_torchrun_with_two_gloo_processes(tiny_toml, tone_dir, tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "--tee=3",
           "-m", "training.cli", "fit", "--config", str(tiny_toml), "--data", str(tone_dir),
           "--run-dir", str(run), "--quiet", "--set", "stages.level1.steps=10"]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    digests = {r["stage"]: r["replica_digests"] for r in rows if "replica_digests" in r}
    assert set(digests) == {"level1", "level2", "prior", "baseline"}
    assert all(len(d) == 2 and d[0] == d[1] for d in digests.values())
    assert json.loads((run / "run.json").read_text())["fits"][0]["processes"] == 2
    # every step saw both processes' batches: the logged throughput counts 2 × batch × segment
    bundle = load_bundle(export(run, name="ddp", out=tmp_path / "bundle"))
    assert bundle.stack.sample(0.05, seed=1).shape == (1, 400)
