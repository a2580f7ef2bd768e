"""vaekit's cache folder, in a module of its own: ``vaekit --help`` reads the cached
entry-point list from it, and must not pay for importing anything more."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """vaekit's cache folder (decoded arrays, the entry-point list): ``$VAEKIT_CACHE_DIR``
    or ``~/.cache/vaekit``."""
    env = os.environ.get("VAEKIT_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "vaekit"
