"""Finding installed model bundles and reading their manifests — without torch.

What the server, the window and the command line need before anything renders: bundle names,
where they live, their manifests and model hashes. Loading weights is ``engine.bundle``'s job.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .errors import BundleError, ModelNotFoundError

FORMAT = "wavestack-bundle"
FORMAT_VERSION = 3  # 2: a bundle says the sampling it was measured with ("sampling");
# 3: no residual conv on a WaveNet's last layer (older bundles' are dropped when they load)
SUPPORTED_VERSIONS = (1, 2, 3)
MODELS_ENV = "WAVESTACK_MODELS"
MANIFEST = "bundle.json"
_KEYS = {
    "format", "format_version", "name", "trained", "sample_rate", "mu", "config",
    "components", "provenance", "metrics",
}
_KEYS_BY_VERSION = {1: _KEYS, 2: _KEYS | {"sampling"}, 3: _KEYS | {"sampling"}}
SAMPLING = {"temperature": (1.0, 0.05, 2.0), "top_p": (1.0, 0.01, 1.0)}  # default, lowest, highest


def sampling(meta: dict[str, Any]) -> dict[str, float]:
    """The sampling a bundle was measured with, which new tracks and ``generate`` start from
    (temperature 1 and top-p 1 for a bundle that names none)."""
    given = meta.get("sampling") or {}
    return {key: float(given.get(key, default)) for key, (default, _, _) in SAMPLING.items()}


def check_sampling_entry(manifest: Path | str, given: Any) -> None:
    """A bundle's ``sampling`` entry is an object of known keys with values in their ranges."""
    if not isinstance(given, dict) or set(given) - set(SAMPLING):
        raise BundleError(f"{manifest}: sampling must be an object of {', '.join(SAMPLING)}, got {given!r}")
    for key, value in given.items():
        _, low, high = SAMPLING[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise BundleError(f"{manifest}: sampling {key} must be a number in [{low:g}, {high:g}], "
                              f"got {value!r}")


def model_hash(meta: dict[str, Any]) -> str:
    """sha256 of the config and every weight file's hash: equal hashes ⇒ identical model."""
    weights = {k: v["sha256"] for k, v in meta["components"].items()}
    blob = json.dumps({"config": meta["config"], "weights": weights}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


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
    keys = _KEYS_BY_VERSION[version]
    if set(meta) != keys:
        extra, missing = sorted(set(meta) - keys), sorted(keys - set(meta))
        raise BundleError(f"{manifest}: unknown keys {extra}, missing keys {missing}")
    if "sampling" in meta:
        check_sampling_entry(manifest, meta["sampling"])
    return meta
