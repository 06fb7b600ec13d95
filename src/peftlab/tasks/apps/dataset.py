"""The APPS dataset (``data.loader=apps``, ``codeparrot/apps``) as the task's records: the problem
statement, starter code, the first solution as the reference, and the input/output pairs."""

from __future__ import annotations

import json

from peftlab.data.hub import NamedLoader
from peftlab.errors import UserError


def _apps(row: dict, index: int) -> dict | None:
    # APPS keeps its solutions and tests as JSON strings; a few problems have neither (left out)
    try:
        solutions = json.loads(row["solutions"]) if row["solutions"] else []
        tests = json.loads(row["input_output"]) if row["input_output"] else {}
    except ValueError as error:
        raise UserError(f"apps problem {row['problem_id']}: solutions or input_output is not JSON ({error})") from None
    if not solutions and not tests.get("inputs"):
        return None
    return {"id": f"apps-{row['problem_id']}", "instruction": row["question"], "starter_code": row["starter_code"] or "",
            "reference": solutions[0] if solutions else None, "inputs": tests.get("inputs", []),
            "outputs": tests.get("outputs", []), "fn_name": tests.get("fn_name")}


LOADER = NamedLoader("apps", "codeparrot/apps", "MIT (the dataset card)",
                     ("problem_id", "question", "solutions", "input_output", "starter_code"), _apps,
                     {"train": "train[:95%]", "validation": "train[95%:]"})
