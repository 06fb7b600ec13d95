"""CodeAlpaca-20k's Python answers (``data.loader=codealpaca-python``, ``sahil2801/CodeAlpaca-20k``): the
dataset mixes languages and has no language field, so a row is kept when its answer is Python code; its
``input``, when there is one, is folded into the instruction. One split, cut 90/5/5."""

from __future__ import annotations

import ast

from peftlab import pyparse
from peftlab.data.hub import NamedLoader

PYTHON_STATEMENTS = (ast.FunctionDef, ast.ClassDef, ast.Assign, ast.For, ast.If, ast.Import, ast.ImportFrom,
                     ast.Return, ast.While, ast.With, ast.AugAssign)


def _is_python_code(code: str) -> bool:
    """Parses as Python and holds a definition or statement, not only a bare expression (a lone word parses)."""
    try:
        tree = pyparse.parse(code)
    except (SyntaxError, ValueError):
        return False
    return any(isinstance(node, PYTHON_STATEMENTS) for node in ast.walk(tree))


def _codealpaca_python(row: dict, index: int) -> dict | None:
    output = row["output"].strip()
    if not _is_python_code(output):
        return None
    instruction = row["instruction"].strip() + (f"\n\nInput: {row['input'].strip()}" if row["input"].strip() else "")
    return {"id": f"codealpaca-{index:05d}", "instruction": instruction, "reference": output}


LOADER = NamedLoader("codealpaca-python", "sahil2801/CodeAlpaca-20k", "CC BY 4.0 (the dataset card)",
                     ("instruction", "input", "output"), _codealpaca_python,
                     {"train": "train[:90%]", "validation": "train[90%:95%]", "test": "train[95%:]"})
