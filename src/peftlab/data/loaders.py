"""Named loaders: the studies' own datasets by name (``data.loader``), each turning its published schema
into the records a task reads (``id``, ``instruction``, ``reference``).

::

    get_loader(name) -> NamedLoader     LOADERS: every loader by name

``data.source`` defaults to the loader's hub id and may point at a local copy in the same schema (a file or
a directory of split files, :mod:`peftlab.data.hub`); ``data.splits`` defaults to the loader's own.
Adding one: a function from a source row to a record (or None to skip the row) and a registry entry.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field

from peftlab.errors import UserError


@dataclass(frozen=True)
class NamedLoader:
    name: str
    hub_id: str
    licence: str
    columns: tuple[str, ...]
    """Source columns the loader reads (checked before any row is converted)."""
    convert: Callable[[dict, int], dict | None]
    """One source row (and its index) -> a record, or None to leave the row out."""
    splits: dict[str, str] = field(default_factory=dict)
    """peftlab split -> source split (datasets' syntax), where it is not the same name."""


def _conala(row: dict, index: int) -> dict:
    # DocPrompting's CoNaLa: the rewritten intent ("nl") and the one-line snippet ("cmd")
    return {"id": str(row["question_id"]) or f"conala-{index}", "instruction": row["nl"], "reference": row["cmd"]}


PYTHON_STATEMENTS = (ast.FunctionDef, ast.ClassDef, ast.Assign, ast.For, ast.If, ast.Import, ast.ImportFrom,
                     ast.Return, ast.While, ast.With, ast.AugAssign)


def _is_python_code(code: str) -> bool:
    """Parses as Python and holds a definition or statement, not only a bare expression (a lone word parses)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return any(isinstance(node, PYTHON_STATEMENTS) for node in ast.walk(tree))


def _codealpaca_python(row: dict, index: int) -> dict | None:
    # CodeAlpaca-20k mixes languages and has no language field: keep the answers that are Python code
    output = row["output"].strip()
    if not _is_python_code(output):
        return None
    instruction = row["instruction"].strip() + (f"\n\nInput: {row['input'].strip()}" if row["input"].strip() else "")
    return {"id": f"codealpaca-{index:05d}", "instruction": instruction, "reference": output}


LOADERS = {
    loader.name: loader
    for loader in (
        NamedLoader("conala", "neulab/docprompting-conala", "MIT (the dataset card)",
                    ("question_id", "nl", "cmd"), _conala),
        NamedLoader("codealpaca-python", "sahil2801/CodeAlpaca-20k", "CC BY 4.0 (the dataset card)",
                    ("instruction", "input", "output"), _codealpaca_python,
                    {"train": "train[:90%]", "validation": "train[90%:95%]", "test": "train[95%:]"}),
    )
}


def get_loader(name: str) -> NamedLoader:
    if name not in LOADERS:
        raise UserError(f"unknown data.loader '{name}'; known: {', '.join(LOADERS)}")
    return LOADERS[name]


def loader_records(loader: NamedLoader, rows, source: str) -> list[dict]:
    """The records of ``rows`` (a ``datasets.Dataset`` in the loader's schema).

    Raises:
        UserError: a column of the schema is missing (the source is not in this loader's schema).
    """
    missing = [column for column in loader.columns if column not in rows.column_names]
    if missing:
        raise UserError(f"data.source {source} is not in the {loader.name} schema: no column "
                        f"{', '.join(missing)} (columns: {', '.join(rows.column_names)})")
    return [record for index, row in enumerate(rows) if (record := loader.convert(row, index)) is not None]
