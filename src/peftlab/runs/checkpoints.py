"""Checkpoints that survive a kill at any moment, and directories written all-or-nothing.

The HF ``Trainer`` writes ``checkpoint-N/`` file by file. Killed (or out of disk) half-way, it leaves a
directory that ``Trainer`` would pick as the newest and fail on, on every later run. So:

* :class:`MarkCompleteCheckpoints` (a ``TrainerCallback``) writes ``peftlab-complete.json`` into a
  checkpoint after ``Trainer`` has saved all of it (``on_save`` runs after the save and the rotation),
  listing every file with its size, and the training config the checkpoint belongs to;
* :func:`newest_complete_checkpoint` takes the newest checkpoint whose marker is present and whose files
  are all there at their recorded sizes, removes the incomplete ones, and says so.

:func:`atomic_directory` writes a directory under a temporary name and renames it into place, so an
adapter or a model directory either exists whole or not at all.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

from transformers import TrainerCallback

from peftlab.errors import UserError

MARKER = "peftlab-complete.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def _file_sizes(directory: Path) -> dict[str, int]:
    return {
        path.relative_to(directory).as_posix(): path.stat().st_size
        for path in sorted(directory.rglob("*")) if path.is_file() and path.name != MARKER
    }


def mark_complete(checkpoint: Path, fingerprint: dict) -> None:
    """Write the completion marker (temp file + rename: the marker itself is never torn)."""
    marker = {"files": _file_sizes(checkpoint), "fingerprint": fingerprint}
    partial = checkpoint / f"{MARKER}.partial"
    partial.write_text(json.dumps(marker, indent=1), encoding="utf-8")
    os.replace(partial, checkpoint / MARKER)


def is_complete(checkpoint: Path) -> bool:
    """The marker is there and every file it lists exists with its recorded size."""
    try:
        files = json.loads((checkpoint / MARKER).read_text(encoding="utf-8"))["files"]
        return bool(files) and all((checkpoint / name).stat().st_size == size for name, size in files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _fingerprint_of(checkpoint: Path) -> dict | None:
    try:
        return json.loads((checkpoint / MARKER).read_text(encoding="utf-8")).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


class MarkCompleteCheckpoints(TrainerCallback):
    """After each save, mark the new checkpoint complete; ``fingerprint`` identifies the training config."""

    def __init__(self, fingerprint: dict):
        self.fingerprint = fingerprint

    def on_save(self, args, state, control, **kwargs):
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        # data-parallel: the main process writes checkpoints, and only it knows when one is whole
        if state.is_world_process_zero and checkpoint.is_dir():
            mark_complete(checkpoint, self.fingerprint)
        return control


def newest_complete_checkpoint(directory: Path, fingerprint: dict, log=None, remove: bool = True) -> Path | None:
    """The checkpoint to resume from, or None to start afresh.

    Incomplete checkpoints (killed or out of space mid-save, or missing files) are removed, newest first,
    until a complete one is found; each removal is reported on ``log`` (stderr by default).

    Raises:
        UserError: the newest complete checkpoint belongs to another training config (resuming it would
            mix two runs).
    """
    log = log or (lambda message: print(message, file=sys.stderr))
    if not directory.is_dir():
        return None
    found = sorted(
        (int(match.group(1)), path) for path in directory.iterdir()
        if path.is_dir() and (match := _CHECKPOINT.match(path.name))
    )
    for _, checkpoint in reversed(found):
        if is_complete(checkpoint):
            if _fingerprint_of(checkpoint) != fingerprint:
                raise UserError(
                    f"checkpoints in {directory} come from another training config; "
                    "use a new --output-dir, or delete that directory to start over"
                )
            return checkpoint
        if remove:  # in data-parallel training only the main process removes; the others skip the same ones
            log(f"{checkpoint.name} is incomplete (interrupted or failed save); removed it, trying an earlier one")
            shutil.rmtree(checkpoint, ignore_errors=True)
    return None


def remove_partials(target: Path) -> None:
    """Leftovers of interrupted :func:`atomic_directory` writes for ``target``."""
    for stale in target.parent.glob(f"{target.name}.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)


@contextmanager
def atomic_directory(target: Path):
    """Yield a temporary sibling of ``target`` to write into; on success it replaces ``target`` whole.

    On any failure the temporary directory is removed and ``target`` is left as it was.
    """
    target = Path(target)
    remove_partials(target)
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    partial.mkdir(parents=True)
    try:
        yield partial
        if target.exists():
            shutil.rmtree(target)
        os.replace(partial, target)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
