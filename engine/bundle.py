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

from .config import StackConfig, from_dict, to_dict
from .errors import BundleError, ConfigError, ModelNotFoundError
from .stack import Stack

FORMAT = "wavestack-bundle"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
MODELS_ENV = "WAVESTACK_MODELS"
MANIFEST = "bundle.json"
_KEYS = {
    "format", "format_version", "name", "trained", "sample_rate", "mu", "config",
    "components", "provenance", "metrics",
}
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
    def hash(self) -> str:
        """sha256 of the config and every weight file: equal hashes ⇒ identical model."""
        return model_hash(self.meta)


def model_hash(meta: dict[str, Any]) -> str:
    weights = {k: v["sha256"] for k, v in meta["components"].items()}
    blob = json.dumps({"config": meta["config"], "weights": weights}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


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
) -> Path:
    """Write ``stack`` as a bundle; the directory appears complete or not at all."""
    target = Path(directory)
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


# ----------------------------------------------------------------------------------- finding
def user_models_dir() -> Path:
    """``$WAVESTACK_MODELS``, else ``$XDG_DATA_HOME/wavestack/models`` (~/.local/share/…)."""
    if os.environ.get(MODELS_ENV):
        return Path(os.environ[MODELS_ENV]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "wavestack" / "models"


def package_models_dir() -> Path:
    return Path(__file__).resolve().parent / "models"


def installed_models() -> dict[str, Path]:
    """Bundle name → directory; a user bundle shadows a built-in one of the same name."""
    found: dict[str, Path] = {}
    for root in (package_models_dir(), user_models_dir()):
        if root.is_dir():
            for sub in sorted(root.iterdir()):
                if (sub / MANIFEST).is_file():
                    found[sub.name] = sub
    return found


def resolve(name_or_path: str | os.PathLike[str]) -> Path:
    """A bundle directory from a path, or from a name in the user or built-in models directory."""
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if os.sep in text or text.startswith(".") or path.is_dir():
        if not path.is_dir():
            raise ModelNotFoundError(f"model directory {path} does not exist")
        return path
    models = installed_models()
    if text not in models:
        names = ", ".join(sorted(models)) or "none"
        raise ModelNotFoundError(
            f"model {text!r} not found; installed: {names} (user models live in {user_models_dir()})"
        )
    return models[text]


# ----------------------------------------------------------------------------------- loading
def read_manifest(directory: Path) -> dict[str, Any]:
    """Parse and check ``bundle.json`` (format, version, keys) without touching the weights."""
    manifest = directory / MANIFEST
    if not manifest.is_file():
        raise BundleError(f"{directory} is not a model bundle: it has no {MANIFEST}")
    try:
        meta = json.loads(manifest.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{manifest} is not valid JSON ({exc}); the bundle is corrupt") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BundleError(f"{manifest} is not a {FORMAT} manifest")
    version = meta.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise BundleError(f"{manifest}: format_version must be a positive integer, got {version!r}")
    if version > max(SUPPORTED_VERSIONS):
        raise BundleError(
            f"{directory.name} uses bundle format {version}, newer than this wavestack reads "
            f"({max(SUPPORTED_VERSIONS)}); upgrade wavestack to load it"
        )
    if version not in SUPPORTED_VERSIONS:
        raise BundleError(f"bundle format {version} is no longer supported")
    if set(meta) != _KEYS:
        extra, missing = sorted(set(meta) - _KEYS), sorted(_KEYS - set(meta))
        raise BundleError(f"{manifest}: unknown keys {extra}, missing keys {missing}")
    return meta


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
        module.load_state_dict(_read_weights(directory, comp, table[comp], module))
    stack.eval()
    return Bundle(name=str(meta["name"]), path=directory, stack=stack, meta=meta)


def _read_weights(
    directory: Path, comp: str, entry: Any, module: torch.nn.Module
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
