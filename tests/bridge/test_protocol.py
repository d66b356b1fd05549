from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bridge.protocol import BY_PATH, PREFIX, TABLE, ProtocolError, reference_markdown

ROOT = Path(__file__).parents[2]


def test_the_protocol_imports_without_torch_or_the_engine():
    code = "import sys, bridge.protocol; assert not {'torch', 'engine'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_every_address_is_under_the_prefix_and_unique():
    assert all(a.full.startswith(PREFIX + "/") for a in TABLE)
    assert len(BY_PATH) == len(TABLE)


def test_no_address_is_under_another_so_every_node_is_a_method_or_a_container():
    paths = [a.full for a in TABLE]
    assert not [(p, q) for p in paths for q in paths if q.startswith(p + "/")]


def test_ints_accept_whole_floats_from_max_and_pd_and_refuse_others():
    seed = BY_PATH["/wavestack/track/seed"]
    assert seed.parse(["bass", 7.0]) == {"track": "bass", "seed": 7}
    assert isinstance(seed.parse(["bass", 7.0])["seed"], int)
    with pytest.raises(ProtocolError, match=r"'seed' must be an integer in \[-1, 2147483647\], got 7.5"):
        seed.parse(["bass", 7.5])
    with pytest.raises(ProtocolError, match="must be a string"):
        seed.parse([3, 7])


def test_ranges_choices_counts_and_defaults():
    tempo, rate = BY_PATH["/wavestack/tempo"], BY_PATH["/wavestack/rate"]
    add = BY_PATH["/wavestack/track/add"]
    assert tempo.parse([96]) == {"bpm": 96.0}
    with pytest.raises(ProtocolError, match=r"in \[20, 300\], got 1000"):
        tempo.parse([1000])
    with pytest.raises(ProtocolError, match="one of 44100, 48000, 96000"):
        rate.parse([22050])
    with pytest.raises(ProtocolError, match="expected 1 argument"):
        tempo.parse([])
    assert add.parse(["keys"]) == {"track": "keys", "model": "default"}
    with pytest.raises(ProtocolError, match="expected 1 to 2 argument"):
        add.parse(["keys", "default", "extra"])
    with pytest.raises(ProtocolError, match="got nan"):
        tempo.parse([float("nan")])


def test_the_readme_protocol_reference_is_current():
    readme = (ROOT / "README.md").read_text()
    assert reference_markdown() in readme, "regenerate it with: python -m bridge.protocol"
