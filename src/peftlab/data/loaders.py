"""Named loaders: the studies' own datasets by name (``data.loader``), each turning its published schema
into the records of the task it feeds (``codegen``'s ``id``/``instruction``/``reference``; ``apps``,
``java-testgen`` and ``humaneval`` read their own keys, see each converter).

::

    get_loader(name) -> NamedLoader     LOADERS: every loader by name

``data.source`` defaults to the loader's hub id and may point at a local copy in the same schema (a file or
a directory of split files, :mod:`peftlab.data.hub`); ``data.splits`` defaults to the loader's own.
Adding one: a function from a source row to a record (or None to skip the row) and a registry entry.
"""

from __future__ import annotations

import ast
import json
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
    task: str = "codegen"
    """The task whose records it makes (only that task reads ``data.loader``)."""
    subset: str | None = None
    """The hub dataset's default configuration (``data.subset`` overrides it)."""


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


def _methods2test(row: dict, index: int) -> dict:
    # "source": the focal method with the context of the chosen configuration (focal class, constructors,
    # other method signatures, fields, test class); "target": the JUnit test case written for it
    return {"id": str(row["id"]), "instruction": row["source"], "reference": row["target"]}


def _last_function(code: str) -> str | None:
    try:
        tree = ast.parse(code)
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
    tree = ast.parse(row["test"])
    tree.body = [node for node in tree.body if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
                                                    and getattr(node.value.func, "id", None) == "check")]
    return {"id": row["task_id"], "task_id": row["task_id"], "prompt": row["prompt"],
            "canonical_solution": row["canonical_solution"], "test": ast.unparse(tree) + "\n",
            "entry_point": entry_point}


LOADERS = {
    loader.name: loader
    for loader in (
        NamedLoader("conala", "neulab/docprompting-conala", "MIT (the dataset card)",
                    ("question_id", "nl", "cmd"), _conala),
        NamedLoader("codealpaca-python", "sahil2801/CodeAlpaca-20k", "CC BY 4.0 (the dataset card)",
                    ("instruction", "input", "output"), _codealpaca_python,
                    {"train": "train[:90%]", "validation": "train[90%:95%]", "test": "train[95%:]"}),
        NamedLoader("apps", "codeparrot/apps", "MIT (the dataset card)",
                    ("problem_id", "question", "solutions", "input_output", "starter_code"), _apps,
                    {"train": "train[:95%]", "validation": "train[95%:]"}, task="apps"),
        NamedLoader("methods2test", "andstor/methods2test_small", "MIT (the dataset card)",
                    ("id", "source", "target"), _methods2test, task="java-testgen", subset="fm+fc+c+m+f+t+tc"),
        NamedLoader("humaneval-x", "THUDM/humaneval-x", "Apache-2.0 (the dataset card)",
                    ("task_id", "prompt", "declaration", "canonical_solution", "test"), _humaneval_x,
                    task="humaneval", subset="python"),
    )
}


def feeds(data_config, task: str) -> bool:
    """Whether ``data.loader`` names a loader that makes ``task``'s records."""
    return data_config.loader is not None and get_loader(data_config.loader).task == task


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
