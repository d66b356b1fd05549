"""Process group set-up for ``torchrun``: gloo on CPU, NCCL on GPUs; a no-op for one process."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order (just ``[value]`` for one process)."""
        if not self.active:
            return [value]
        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, value)
        return out

    def agree(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank (so time-based decisions cannot diverge)."""
        if not self.active:
            return flag
        t = torch.tensor([int(flag)], device=self.device)
        dist.broadcast(t, 0)
        return bool(t.item())


def setup() -> World:
    """Join the process group that ``torchrun`` describes in the environment, if any."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        dist.init_process_group("nccl")
        device = torch.device("cuda", local)
    else:
        dist.init_process_group("gloo")
        device = torch.device("cpu")
    return World(rank=rank, size=size, device=device)


def teardown(world: World, finished: bool) -> None:
    """Leave the process group; after a clean finish, only once every rank is done with it (a rank
    that leaves while another still talks to it can take the job down at exit)."""
    if world.active and dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()


def state_digest(module: torch.nn.Module) -> str:
    """sha256 of every parameter and buffer: equal digests ⇒ identical replicas."""
    digest = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
