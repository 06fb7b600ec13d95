"""JSONL records: one JSON object per line. Every dataset and prediction file in peftlab uses this format."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from peftlab.errors import UserError


def read_jsonl(path: str | Path, required: tuple[str, ...] = ()) -> list[dict]:
    """Read a JSONL file; blank lines are skipped.

    Raises:
        UserError: the file is missing, a line is not a JSON object (file and line number are named), or
            a record lacks one of ``required`` keys.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"file not found: {path}")
    records = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise UserError(f"{path}:{number}: malformed JSON ({error.msg})") from None
            if not isinstance(record, dict):
                raise UserError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
            missing = [key for key in required if key not in record]
            if missing:
                raise UserError(f"{path}:{number}: missing key(s) {', '.join(missing)}")
            records.append(record)
    return records


def write_jsonl(path: str | Path, records: Iterable[dict]) -> None:
    """Write records atomically (temporary file + rename), so an interruption never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(partial, path)


def write_json(path: str | Path, value) -> None:
    """Write one JSON document atomically, indented for reading."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(partial, path)
