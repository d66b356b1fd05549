"""Training checkpoints: one safetensors file per stage, replaced atomically.

A checkpoint holds the model's state, the optimiser's state, the torch RNG state and, in the JSON
metadata, the step, the data samplers' RNG states, wall time and whether the stage is finished.
It is a training-only format (bundles are what the engine loads) and is never unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from engine.wavenet import unused_weights
from engine.wavfile import atomic_output

from .errors import RunError

META_KEY = "wavestack-checkpoint"


def save_checkpoint(
    path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, meta: dict[str, Any]
) -> None:
    """Write the checkpoint next to ``path`` under a temporary name, fsync it, rename it."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for index, state in opt["state"].items():
        for key, value in state.items():
            if not torch.is_tensor(value):
                value = torch.tensor(value)
            tensors[f"optim.{index}.{key}"] = value.detach().cpu().contiguous().clone()
    tensors["rng.torch"] = torch.get_rng_state()
    header = dict(meta, param_groups=opt["param_groups"])
    blob = save(tensors, metadata={META_KEY: json.dumps(header)})
    with atomic_output(path) as fh:
        fh.write(blob)


def read_meta(path: Path) -> dict[str, Any]:
    try:
        with safe_open(str(path), framework="pt") as fh:
            return json.loads((fh.metadata() or {})[META_KEY])
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as exc:
        raise RunError(
            f"{path} is not a readable training checkpoint ({exc}); delete it to restart the stage"
        ) from None


def load_checkpoint(
    path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None
) -> dict[str, Any]:
    """Restore ``model`` (and ``optimizer`` and the torch RNG) from ``path``; returns the metadata."""
    meta = read_meta(path)
    with safe_open(str(path), framework="pt") as fh:
        keys = list(fh.keys())
        weights = {k[len("model."):]: fh.get_tensor(k) for k in keys if k.startswith("model.")}
        dropped = unused_weights(weights, model.state_dict())
        for key in dropped:
            del weights[key]
        try:
            model.load_state_dict(weights, strict=True)
        except RuntimeError as exc:
            raise RunError(f"{path} does not fit this stage's model: {exc}") from None
        if optimizer is not None:
            state: dict[int, dict[str, torch.Tensor]] = {}
            for key in keys:
                if key.startswith("optim."):
                    _, index, name = key.split(".", 2)
                    state.setdefault(int(index), {})[name] = fh.get_tensor(key)
            groups = meta["param_groups"]
            if dropped:
                state, groups = _without(model, dropped, state, groups)
            optimizer.load_state_dict({"state": state, "param_groups": groups})
            torch.set_rng_state(fh.get_tensor("rng.torch"))
    return meta


def _without(model: torch.nn.Module, dropped: list[str], state: dict[int, Any],
             groups: list[dict[str, Any]]) -> tuple[dict[int, Any], list[dict[str, Any]]]:
    """The optimiser state of a checkpoint whose model had the parameters ``dropped`` (which sat
    right after their layer's ``conv.bias``), renumbered for ``model``, which has not."""
    position = {name: i for i, (name, _) in enumerate(model.named_parameters())}
    old: list[str] = []
    for name in position:
        old.append(name)
        if name.endswith(".conv.bias"):
            old += [key for key in dropped if key.rsplit(".", 1)[0] == name[: -len("conv.bias")] + "res"]
    index = {i: position[name] for i, name in enumerate(old) if name in position}
    return ({index[i]: value for i, value in state.items() if i in index},
            [dict(group, params=[index[i] for i in group["params"] if i in index]) for group in groups])
