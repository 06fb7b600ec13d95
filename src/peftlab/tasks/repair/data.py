"""The repair task's bugs: one documented JSONL format that every bug set is converted to, the HumanEval
injected bugs, and execution-validated training bugs injected into a mined project's functions.

Bug format (one JSON object per line; ``peftlab.tasks.repair.data.read_bugs``)::

    {"id": str, "buggy": str, "tests": str, "entry_point": str,
     "fixed": str (optional: the known fix, for exact-fix scoring),
     "setup": str (optional: trusted code run before the tests),
     "operator": str (optional: how the bug was made), "failing_test": str (optional),
     "suffix": str (optional: trusted code appended to every program run, e.g. a wrapper),
     "call": str (optional: the function the tests call, default entry_point; e.g. that wrapper)}

``buggy`` and ``fixed`` are whole programs defining ``entry_point``; ``tests`` defines ``check(candidate)``
(HumanEval style, each asserting statement one test case; see :mod:`peftlab.execution.harness`).

::

    read_bugs(path) -> list[dict]                     raises UserError naming the line of a bad row
    humaneval_bugs(per_problem=1, seed=0) -> list[dict]
    function_source(program, entry_point) -> str | None
"""

from __future__ import annotations

import ast
import random

from peftlab import pyparse
from peftlab.data.records import read_jsonl
from peftlab.errors import UserError
from peftlab.tasks import humaneval
from peftlab.tasks.testgen.data import humaneval_mutants

REQUIRED = ("id", "buggy", "tests", "entry_point")


def read_bugs(path) -> list[dict]:
    """Bugs in the documented format. Raises UserError for a missing key, a non-string field, a program
    that does not define ``entry_point`` or tests without ``check``."""
    bugs = read_jsonl(path, required=REQUIRED)
    for number, bug in enumerate(bugs, start=1):
        for key in (*REQUIRED, "fixed", "setup", "operator", "failing_test", "suffix", "call"):
            if key in bug and not isinstance(bug[key], str):
                raise UserError(f"{path}:{number}: '{key}' must be a string")
        if function_source(bug["buggy"], bug["entry_point"]) is None:
            raise UserError(f"{path}:{number} ({bug['id']}): 'buggy' does not define {bug['entry_point']}()")
        if "def check(" not in bug["tests"]:
            raise UserError(f"{path}:{number} ({bug['id']}): 'tests' must define check(candidate)")
    return bugs


def top_level_function(program: str, entry_point: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The node of top-level function ``entry_point`` in ``program``, or None (no such function, or the
    program does not parse)."""
    try:
        tree = pyparse.parse(program)
    except (SyntaxError, ValueError):
        return None
    return next((n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and n.name == entry_point), None)


def function_source(program: str, entry_point: str) -> str | None:
    """The source of top-level function ``entry_point`` in ``program``, or None."""
    node = top_level_function(program, entry_point)
    return ast.get_source_segment(program, node, padded=False) if node is not None else None


def humaneval_bugs(per_problem: int = 1, seed: int = 0, workers: int = 2, limit: int | None = None) -> list[dict]:
    """Single-site bugs injected into HumanEval's canonical solutions (as HumanEval-Java was built), kept
    only when HumanEval's tests then fail (:func:`peftlab.tasks.testgen.data.humaneval_mutants`), at most
    ``per_problem`` per problem (a seeded choice). The known fix is the canonical solution, unparsed the
    same way as the bug, so an exact fix is the original program's AST. ``limit``: the first N problems."""
    problems = dict(list(humaneval.load_problems().items())[:limit])
    found = humaneval_mutants(problems, workers)
    bugs = []
    for task_id, problem in problems.items():
        mutants = found[task_id]
        chosen = random.Random(f"{seed}:{task_id}").sample(mutants, min(per_problem, len(mutants)))
        fixed = ast.unparse(pyparse.parse(problem["prompt"] + problem["canonical_solution"])) + "\n"
        for index, mutant in enumerate(sorted(chosen, key=mutants.index)):
            bugs.append({"id": f"{task_id}/bug{index}", "buggy": mutant["source"], "fixed": fixed,
                         "tests": problem["test"], "entry_point": problem["entry_point"], "setup": problem["prompt"],
                         "operator": mutant["operator"], "description": mutant["description"]})
    return bugs
