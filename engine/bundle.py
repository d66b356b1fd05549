"""Model bundles: a directory with ``bundle.json`` and one ``*.safetensors`` file per component.

Loading is strict: anything this version does not understand is refused with a message that says
what is wrong and what to do. Weights are only ever read with safetensors, never unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .catalog import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    check_sampling_entry,
    model_hash,
    read_manifest,
    resolve,
)
from .catalog import sampling as catalog_sampling
from .config import StackConfig, from_dict, to_dict
from .errors import BundleError, ConfigError
from .stack import Stack
from .wavenet import unused_weights

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # pickle protocol ≥ 2; torch.save zip archives


@dataclass(frozen=True)
class Bundle:
    """A loaded model: the ``stack`` in eval mode plus its manifest."""

    name: str
    path: Path
    stack: Stack
    meta: dict[str, Any]

    @property
    def sample_rate(self) -> int:
        return self.stack.sample_rate

    @property
    def trained(self) -> bool:
        return bool(self.meta["trained"])

    @property
    def sampling(self) -> dict[str, float]:
        """The temperature and top-p the bundle was measured with (``engine.catalog.sampling``)."""
        return catalog_sampling(self.meta)

    @property
    def hash(self) -> str:
        """sha256 of the config and every weight file: equal hashes ⇒ identical model."""
        return model_hash(self.meta)


def components(stack: Stack) -> dict[str, torch.nn.Module]:
    named: dict[str, torch.nn.Module] = {
        f"level{i + 1}": level for i, level in enumerate(stack.levels)
    }
    named["prior"] = stack.prior
    return named


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------------- saving
def save_bundle(
    stack: Stack,
    directory: str | os.PathLike[str],
    *,
    name: str,
    trained: bool,
    provenance: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    sampling: dict[str, float] | None = None,
) -> Path:
    """Write ``stack`` as a bundle; the directory appears complete or not at all. ``sampling``: the
    temperature and top-p it was measured with (new tracks start from them; default 1 and 1)."""
    target = Path(directory)
    check_sampling_entry(f"{name}: sampling", sampling or {})
    if not _NAME.match(name):
        raise BundleError(f"bundle name {name!r} must be letters, digits, '_', '.', '-' (≤ 64)")
    if target.exists() and any(target.iterdir()):
        raise BundleError(f"{target} already exists and is not empty; choose a new directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        table = {}
        for comp, module in components(stack).items():
            path = tmp / f"{comp}.safetensors"
            tensors = {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
            save_file(tensors, str(path), metadata={"component": comp})
            table[comp] = {
                "file": path.name,
                "sha256": sha256_file(path),
                "parameters": sum(p.numel() for p in module.parameters()),
            }
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": name,
            "trained": trained,
            "sample_rate": stack.sample_rate,
            "mu": stack.cfg.mu,
            "config": to_dict(stack.cfg),
            "components": table,
            "provenance": provenance or {},
            "metrics": metrics or {},
            "sampling": catalog_sampling({"sampling": sampling or {}}),
        }
        (tmp / MANIFEST).write_text(json.dumps(meta, indent=2) + "\n")
        for path in tmp.iterdir():  # mkdtemp and safetensors create owner-only files
            path.chmod(0o644)
        tmp.chmod(0o755)
        if target.exists():
            target.rmdir()
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


# ----------------------------------------------------------------------------------- loading
def load_bundle(name_or_path: str | os.PathLike[str]) -> Bundle:
    """Load a bundle by name (user dir, then built-in) or by directory path; verify everything."""
    directory = resolve(name_or_path)
    meta = read_manifest(directory)
    try:
        cfg = from_dict(StackConfig, meta["config"], "config")
    except ConfigError as exc:
        raise BundleError(f"{directory / MANIFEST}: {exc}") from None
    stack = Stack(cfg)
    expected = components(stack)
    table = meta["components"]
    if not isinstance(table, dict) or set(table) != set(expected):
        got = sorted(table) if isinstance(table, dict) else table
        raise BundleError(
            f"{directory.name}: components {got} do not match the config's {sorted(expected)}"
        )
    for comp, module in expected.items():
        module.load_state_dict(_read_weights(directory, comp, table[comp], module, meta["format_version"]))
    stack.eval()
    return Bundle(name=str(meta["name"]), path=directory, stack=stack, meta=meta)


def _read_weights(
    directory: Path, comp: str, entry: Any, module: torch.nn.Module, version: int
) -> dict[str, torch.Tensor]:
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
        raise BundleError(f"{directory.name}: component {comp!r} has no weights file entry")
    filename = entry["file"]
    if Path(filename).name != filename or not filename.endswith(".safetensors"):
        raise BundleError(f"{directory.name}: weights file {filename!r} must be a *.safetensors name")
    path = directory / filename
    if not path.is_file():
        raise BundleError(f"{directory.name}: weights file {filename} is missing; reinstall the model")
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head.startswith(_PICKLE_MAGIC):
        raise BundleError(
            f"{path} is a pickle/torch.save file; wavestack refuses to unpickle weights "
            "(a pickle can run code). Re-export the model with safetensors"
        )
    if sha256_file(path) != entry.get("sha256"):
        raise BundleError(f"{path} does not match its sha256 in {MANIFEST}: the file is corrupt or altered")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise BundleError(f"{path} is not a readable safetensors file ({exc})") from None
    own = module.state_dict()
    if version < 3:  # weights that fed nothing, left out since format 3
        for key in unused_weights(tensors, own):
            del tensors[key]
    unknown, missing = sorted(set(tensors) - set(own)), sorted(set(own) - set(tensors))
    if unknown or missing:
        raise BundleError(
            f"{path.name}: weights do not fit the config (unknown keys {unknown[:5]}, "
            f"missing keys {missing[:5]}); the bundle was made by another model layout"
        )
    for key, value in tensors.items():
        if value.shape != own[key].shape:
            raise BundleError(
                f"{path.name}: {key} has shape {tuple(value.shape)}, the config needs "
                f"{tuple(own[key].shape)}"
            )
        if value.dtype != own[key].dtype:
            raise BundleError(f"{path.name}: {key} has dtype {value.dtype}, expected {own[key].dtype}")
    return tensors
