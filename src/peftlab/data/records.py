"""JSONL records: one JSON object per line. Every dataset and prediction file in peftlab uses this format."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from peftlab.errors import UserError


def read_jsonl(path: str | Path, required: tuple[str, ...] | dict[str, type] = ()) -> list[dict]:
    """Read a UTF-8 JSONL file; blank lines are skipped.

    ``required`` names keys every record must have; as a ``{key: type}`` mapping it also checks their types.

    Raises:
        UserError: the file is missing or not UTF-8 text, a line is not a JSON object, a record lacks one
            of the ``required`` keys or has one of the wrong type (file and line number are named).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"file not found: {path}")
    types = required if isinstance(required, dict) else dict.fromkeys(required, object)
    records = []
    number = 0
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    records.append(_parse_record(line, types, f"{path}:{number}"))
    except UnicodeDecodeError:
        raise UserError(f"{path}:{number + 1}: not UTF-8 text (is this a JSONL file?)") from None
    return records


def _parse_record(line: str, types: dict[str, type], where: str) -> dict:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise UserError(f"{where}: malformed JSON ({error.msg})") from None
    if not isinstance(record, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = [key for key in types if key not in record]
    if missing:
        raise UserError(f"{where}: missing key(s) {', '.join(missing)}")
    for key, expected in types.items():
        if not isinstance(record[key], expected):
            raise UserError(f"{where}: '{key}' must be {expected.__name__}, got {type(record[key]).__name__}")
    return record


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
