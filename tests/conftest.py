import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from bridge.osc.server import Server
from engine.bundle import save_bundle
from engine.stack import Stack
from tests.tiny import make_stack


@pytest.fixture(scope="session", autouse=True)
def cores_shared_between_test_processes() -> None:
    """With the suite spread over several processes (pytest-xdist), each gets its share of the
    cores for torch, so no two processes' thread pools fight over one core (tests that measure
    threads set their own)."""
    processes = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if processes > 1:
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // processes))


@pytest.fixture(scope="session", autouse=True)
def compiled_fast_sampler() -> None:
    """The first fast-sampler run on a machine compiles it (~15 s, then cached): done here, once,
    rather than inside whichever test happens to render first and times its replies."""
    make_stack(1).sample(0.01, seed=0)


@pytest.fixture
def stack() -> Stack:
    return make_stack(2)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    save_bundle(make_stack(2, seed=5), root / "tiny", name="tiny", trained=False)
    return root


@pytest.fixture
def tiny_model(models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Installs a tiny 8 kHz model as ``tiny`` (a user model) for the test."""
    monkeypatch.setenv("WAVESTACK_MODELS", str(models_dir))
    return "tiny"


@pytest.fixture
def server(tmp_path: Path, tiny_model: str) -> Iterator[Server]:
    """A running server on a free loopback port with the tiny model installed."""
    srv = Server(port=0, project=str(tmp_path / "project"))
    srv.start()
    yield srv
    srv.shutdown()
