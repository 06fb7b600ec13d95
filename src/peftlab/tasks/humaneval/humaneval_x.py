"""HumanEval-X's Python subset (``data.loader=humaneval-x``, ``THUDM/humaneval-x``) as HumanEval problems."""

from __future__ import annotations

import ast

from peftlab import pyparse
from peftlab.data.hub import NamedLoader
from peftlab.errors import UserError


def _last_function(code: str) -> str | None:
    try:
        tree = pyparse.parse(code)
    except SyntaxError:
        return None
    names = [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return names[-1] if names else None


def _humaneval_x(row: dict, index: int) -> dict:
    # HumanEval-X has no entry_point column: the function the prompt ends with is the one to write (true of
    # all 164 HumanEval prompts). Its Python tests end by calling check(<function>) themselves; the sandbox
    # calls check(candidate), so those top-level calls are dropped.
    if not row["task_id"].startswith("Python/"):
        raise UserError(f"humaneval-x row {row['task_id']}: only the Python subset is execution-scored here "
                        "(data.subset=python)")
    entry_point = _last_function(row["prompt"])
    if entry_point is None:
        raise UserError(f"humaneval-x row {row['task_id']}: its prompt does not parse to a function")
    tree = pyparse.parse(row["test"])
    tree.body = [node for node in tree.body if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
                                                    and getattr(node.value.func, "id", None) == "check")]
    return {"id": row["task_id"], "task_id": row["task_id"], "prompt": row["prompt"],
            "canonical_solution": row["canonical_solution"], "test": ast.unparse(tree) + "\n",
            "entry_point": entry_point}


LOADER = NamedLoader("humaneval-x", "THUDM/humaneval-x", "Apache-2.0 (the dataset card)",
                     ("task_id", "prompt", "declaration", "canonical_solution", "test"), _humaneval_x,
                     subset="python")
