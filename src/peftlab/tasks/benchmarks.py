"""The execution benchmarks' reference code, for the contamination check of mined training data
(:mod:`peftlab.data.contamination`): training items that copy a benchmark solution are dropped."""

from __future__ import annotations

from peftlab.data.contamination import joined_code
from peftlab.tasks import humaneval
from peftlab.tasks.mbpp import data as mbpp


def _reference_code(problem: dict) -> str | None:
    """prompt + solution when the prompt is code (HumanEval, MultiPL-E), else the solution alone."""
    return joined_code(problem.get("prompt"), problem.get("canonical_solution"))


def benchmark_references() -> list[tuple[str, str]]:
    """(benchmark_id, code) for every HumanEval problem, every MBPP solution, and every
    QuixBugs program, fixed and buggy (the repair task's test set: both are indexed because one edit in a
    five-line program moves the 5-gram Jaccard below the near-duplicate threshold).

    MBPP's MultiPL-E form ships no solutions; the original MBPP test split's 500 solutions (vendored, see
    :func:`peftlab.tasks.mbpp.data.reference_solutions`) are indexed instead. The data card's ``references``
    counts say which benchmarks were actually checked.

    Raises:
        UserError: a benchmark's data is unavailable or damaged.
    """
    references = []
    for problems in (humaneval.load_problems(), mbpp.load_problems()):
        for task_id, problem in problems.items():
            code = _reference_code(problem)
            if code:
                references.append((task_id, code))
    references += list(mbpp.reference_solutions().items())  # the original MBPP test split's solutions
    # Imported here: loading the repair package runs its __init__, which reaches back to this module
    # (through mined_projects' contamination filter) before this module has finished loading.
    from peftlab.tasks.repair.quixbugs import quixbugs_bugs

    references += [(bug["id"], code) for bug in quixbugs_bugs()[0] for code in (bug["fixed"], bug["buggy"])]
    return references
