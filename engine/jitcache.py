"""Where numba keeps the compiled sampler: one cache folder per version of its sources.

numba's own cache notices an edit to the file that defines a function, not to the files whose
functions it inlines (``simd.py``, ``lpc.py`` in the fast loop), so a stale loop could survive an
edit. Here the folder is named after a hash of every compiled source, the numba version and the
CPU: any change starts a fresh cache. It lives in the user's cache directory
(``$XDG_CACHE_HOME/wavestack/numba``, else ``~/.cache/…``); ``NUMBA_CACHE_DIR`` set by the user wins.
Where that folder cannot be written, a private temporary one is used for this process (compiled
again at every start), and a line on stderr says so. Import this module before any
``njit(cache=True)`` decoration.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

SOURCES = ("fastpath.py", "simd.py", "lpc.py")  # every file whose functions the compiled loops use


def cache_dir(sources: Path | None = None) -> Path:
    """The numba cache folder for the compiled sources (in ``sources``, default this package's
    folder), this numba and this CPU."""
    import numba
    from llvmlite import binding

    digest = hashlib.sha256()
    here = Path(__file__).resolve().parent if sources is None else sources
    for name in SOURCES:
        digest.update((here / name).read_bytes())
    digest.update(f"{numba.__version__} {binding.get_host_cpu_name()}".encode())
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "wavestack" / "numba" / digest.hexdigest()[:16]


def configure() -> None:
    """Point numba's cache at :func:`cache_dir` unless the user chose one."""
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a dependency
        return
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        writable = os.access(folder, os.W_OK | os.X_OK)
    except OSError:
        writable = False
    if not writable:  # numba would refuse every cached function: compile into a private folder
        private = tempfile.mkdtemp(prefix="wavestack-numba-")
        atexit.register(shutil.rmtree, private, ignore_errors=True)
        print(f"wavestack: cannot write the compiled-code cache {folder}; compiling into {private} for "
              "this run only (make the folder writable or set NUMBA_CACHE_DIR to keep it)",
              file=sys.stderr, flush=True)
        folder = Path(private)
    numba.config.CACHE_DIR = str(folder)


configure()
