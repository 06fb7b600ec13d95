"""A full disk, said in one line: which disk, how much is free, what peftlab keeps there that can go.

Libraries report a full disk in their own words, and not always with an errno: Python's ``OSError``
(``ENOSPC``, ``EDQUOT``), safetensors' ``SafetensorError`` ("... (os error 28)") and torch's zip writer
(a ``RuntimeError`` such as "unexpected pos 576 vs 534" or "file write failed", with no errno at all).
:func:`out_of_space` reads all of these; for torch's errno-less writer errors it asks the disk itself.
:func:`disk_full_is_a_user_error` turns a failed save into :class:`~peftlab.errors.UserError` with the
line from :func:`full_disk_line`. Whatever was written before (finished stages, complete checkpoints)
stays as it was: checkpoints and adapters are written so that a torn save is never taken as finished
(:mod:`peftlab.runs.checkpoints`).
"""

from __future__ import annotations

import errno
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from peftlab.cache import cache_dir
from peftlab.errors import UserError

NEARLY_FULL_BYTES = 64 * 2**20
"""Below this much free space, a save that failed without saying why is taken to have failed for space."""

_SAID_FULL = ("no space left on device", "os error 28", "disk quota exceeded", "os error 122")
_TORCH_WRITER = ("file write failed", "unexpected pos", "pytorchstreamwriter")


def _existing(path: Path) -> Path:
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(_existing(path)).free


def mount_point(path: Path) -> Path:
    path = _existing(path)
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def out_of_space(error: BaseException | None, where: Path | None = None) -> bool:
    """Whether ``error`` (or an error it was raised from) means the disk filled up. For torch's writer
    errors, which carry no errno, the disk at ``where`` is asked: nearly full means yes."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(error).lower()
        if any(marker in text for marker in _SAID_FULL):
            return True
        if where is not None and any(marker in text for marker in _TORCH_WRITER):
            return free_bytes(where) < NEARLY_FULL_BYTES
        error = error.__cause__ or error.__context__
    return False


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file()) if path.is_dir() else 0


def _amount(size: int) -> str:
    for unit, scale in (("GB", 2**30), ("MB", 2**20)):
        if size >= scale:
            return f"{size / scale:,.1f} {unit}" if unit == "GB" else f"{size / scale:,.0f} {unit}"
    return f"{size / 2**10:,.0f} KB"


def _what_can_go(where: Path) -> list[str]:
    """peftlab's large files on the same disk that nothing still needs: the model cache (rebuilt on demand)
    and the checkpoints of finished runs beside the run that failed (a finished run resumes from none)."""
    device = _existing(where).stat().st_dev
    found = []
    cache = cache_dir()
    if cache.is_dir() and cache.stat().st_dev == device:
        found.append(f"the model cache {cache} ({_amount(_size(cache))}; rebuilt when needed)")
    run = next((parent for parent in (where, *where.parents) if (parent / "stages").is_dir()
                or (parent / "checkpoints").is_dir()), None)
    if run is not None:
        finished = [other / "checkpoints" for other in run.parent.glob("*/")
                    if other != run and (other / "stages" / "evaluate.json").is_file()]
        if size := sum(_size(checkpoints) for checkpoints in finished):
            found.append(f"the checkpoints of finished runs in {run.parent}, */checkpoints ({_amount(size)})")
    return found


def full_disk_line(where: Path, doing: str) -> str:
    """One line: the disk ``where`` is on, its free space, what peftlab has there that can be deleted."""
    where = Path(where).absolute()
    hints = _what_can_go(where)
    freeable = f" ({'; '.join(hints)})" if hints else ""
    return (f"the disk holding {where} (mounted at {mount_point(where)}, {_amount(free_bytes(where))} free) "
            f"is full: {doing} failed. Free space on it{freeable} and re-run the same command: finished stages "
            "and complete checkpoints were kept, and it resumes from them")


@contextmanager
def disk_full_is_a_user_error(where: Path, doing: str):
    """Raise :class:`UserError` with :func:`full_disk_line` when the block fails for lack of disk."""
    try:
        yield
    except UserError:
        raise
    except Exception as error:
        if not out_of_space(error, where):
            raise
        raise UserError(full_disk_line(where, doing)) from None
