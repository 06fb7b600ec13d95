"""The execution benchmarks' reference code, for the contamination check of mined training data
(:mod:`peftlab.data.contamination`): training items that copy a benchmark solution are dropped."""

from __future__ import annotations

import ast

from peftlab.tasks import humaneval
from peftlab.tasks.mbpp import data as mbpp


def _reference_code(problem: dict) -> str | None:
    """prompt + solution when the prompt is code (HumanEval, MultiPL-E), else the solution alone."""
    solution = problem.get("canonical_solution")
    if not solution:
        return None
    joined = (problem.get("prompt") or "") + solution
    try:
        ast.parse(joined)
        return joined
    except (SyntaxError, ValueError):
        return solution


def benchmark_references() -> list[tuple[str, str]]:
    """(benchmark_id, code) for every HumanEval problem, plus every MBPP problem that has a solution.

    MBPP's MultiPL-E form ships no solutions, so today it contributes nothing; the data card's
    ``references`` counts say which benchmarks were actually checked.

    Raises:
        UserError: a benchmark's data is unavailable or damaged.
    """
    references = []
    for problems in (humaneval.load_problems(), mbpp.load_problems()):
        for task_id, problem in problems.items():
            code = _reference_code(problem)
            if code:
                references.append((task_id, code))
    return references
