"""The manifest's journal: recording touches one line however long the manifest is; a crash at any
step loses no render and doubles none; the JSON and REAPER project are whole once a writer stops."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.render import manifest
from bridge.render.project import RPP, Claim, Project, ProjectError

ROOT = Path(__file__).parents[2]


def entry(i: int) -> dict:
    return {"kind": "track", "track": "keys", "seed": i, "session": {"tempo": 100.0, "meter": [3, 4]},
            "files": [{"track": "keys", "path": f"Audio/01_keys_take{i}.wav", "take": i,
                       "position_seconds": 0.0, "seconds": 2.0, "sample_rate": 48000}]}


def journals(root: Path) -> list[Path]:
    return sorted(root.glob("wavestack-journal.*.jsonl"))


def test_recording_into_a_long_manifest_appends_a_line_and_leaves_the_json_alone(tmp_path, monkeypatch):
    project = Project(root := tmp_path / "big")
    (root / "wavestack.json").write_text(json.dumps({"format": "wavestack-project", "version": 1,
                                                     "renders": [entry(i) for i in range(1, 5001)]}))
    project.record(entry(5001), 100.0, (3, 4))  # the first fold of this process: 5,001 renders
    monkeypatch.setattr(manifest, "COMPACT_RATIO", 1e6)  # the next fold is far off, on any machine
    folded = (root / "wavestack.json").stat()
    for i in range(5002, 5006):
        project.record(entry(i), 100.0, (3, 4))
    now = (root / "wavestack.json").stat()
    assert (now.st_ino, now.st_mtime_ns) == (folded.st_ino, folded.st_mtime_ns)  # not rewritten
    [journal] = journals(root)
    assert len(journal.read_text().splitlines()) == 4  # one line per render, nothing else written
    assert [r["seed"] for r in project.read_manifest()["renders"]][-5:] == [5001, 5002, 5003, 5004, 5005]
    project.compact()
    data = json.loads((root / "wavestack.json").read_text())
    assert len(data["renders"]) == 5005 and not journals(root)
    rpp = (root / RPP).read_text()
    assert rpp.count('FILE "Audio/01_keys_take5005.wav"') == 1 and "TEMPO 100 3 4" in rpp


def test_a_fold_cut_short_or_a_torn_line_neither_doubles_nor_loses_a_render(tmp_path):
    root = tmp_path / "p"
    (root / "Audio").mkdir(parents=True)
    # killed after writing the JSON that folds journal 3, before deleting journal 3
    (root / "wavestack.json").write_text(json.dumps({"format": "wavestack-project", "version": 1,
                                                     "renders": [entry(1), entry(2)], "compacted": 3}))
    (root / "wavestack-journal.3.jsonl").write_text(json.dumps(entry(2)) + "\n")
    # a newer journal whose writer died while appending its second line
    (root / "wavestack-journal.4.jsonl").write_text(json.dumps(entry(3)) + "\n" + json.dumps(entry(4))[:30])
    seeds = [r["seed"] for r in Project(root).read_manifest()["renders"]]
    assert seeds == [1, 2, 3]
    Claim(root).release()  # the next writer folds what it finds
    assert [r["seed"] for r in json.loads((root / "wavestack.json").read_text())["renders"]] == [1, 2, 3]
    assert not journals(root)
    (root / "wavestack-journal.9.jsonl").write_text("not json\n" + json.dumps(entry(5)) + "\n")
    with pytest.raises(ProjectError, match="damaged at line 1"):
        Project(root).read_manifest()


def test_a_writer_killed_before_folding_leaves_renders_the_next_writer_finds(tmp_path):
    root = tmp_path / "p"
    code = (
        "import os, sys; sys.path.insert(0, sys.argv[2])\n"
        "from bridge.render import manifest\n"
        "from bridge.render.project import Project\n"
        "from tests.bridge.test_manifest import entry\n"
        "project = Project(sys.argv[1])\n"
        "manifest.COMPACT_RATIO, manifest.ALWAYS_BELOW = 1e9, 0\n"
        "project.record(entry(1), 100.0, (3, 4))\n"  # folded: the first of the process
        "for i in (2, 3): project.record(entry(i), 100.0, (3, 4))\n"  # journal only
        "os._exit(0)\n"  # killed: no release, no fold
    )
    subprocess.run([sys.executable, "-c", code, str(root), str(ROOT)], check=True, cwd=ROOT,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert len(json.loads((root / "wavestack.json").read_text())["renders"]) == 1 and journals(root)
    assert [r["seed"] for r in Project(root).read_manifest()["renders"]] == [1, 2, 3]
    claim = Claim(root)
    claim.release()
    assert len(json.loads((root / "wavestack.json").read_text())["renders"]) == 3
    assert "01_keys_take3.wav" in (root / RPP).read_text()
    assert manifest.COMPACT_RATIO == 5.0  # the child's setting was its own
