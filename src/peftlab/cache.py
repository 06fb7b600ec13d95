"""Where peftlab keeps what it builds once per machine: converted models, unpacked source distributions."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir


def cache_dir() -> Path:
    """``PEFTLAB_CACHE`` if set, else the platform's user cache directory for peftlab."""
    return Path(os.environ.get("PEFTLAB_CACHE") or user_cache_dir("peftlab"))
