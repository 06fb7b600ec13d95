"""MBPP (Austin et al., 2021) in MultiPL-E's "reworded" Python form, scored by execution like HumanEval.

The data layer is :mod:`peftlab.tasks.mbpp.data`; provenance, licences and test adaptation are in
docs/datasets.md (section "MBPP") and the NOTICE file next to the data. Evaluation only: MultiPL-E's
licence forbids using its contents as training data, so the task has no training split (and ICL/RAG,
which draw demonstrations from one, cannot run on it). MultiPL-E ships no reference solutions, so MBPP
reports pass@k and tests passed, not EM or CodeBLEU. The original MBPP solutions of its test split (235 of
the 397 problems) are vendored for one purpose: checking training data against them
(:meth:`MBPP.reference_code`, :mod:`peftlab.tasks.benchmarks`).
"""

from __future__ import annotations

from peftlab.execution.scoring import ExecutionProblem
from peftlab.tasks.executed import ExecutedTask
from peftlab.tasks.mbpp.data import load_problems, reference_solutions

STOP_STRINGS = ("\ndef ", "\nclass ", "\nif ", "\nprint(", "\n#")
"""MultiPL-E's Python stop tokens (``\\ndef``, ``\\n#``, ``\\nif``, ``\\nclass``) plus ``\\nprint(``, as for
HumanEval; with a trailing space so a top-level ``define_x = ...`` does not stop a completion."""


class MBPP(ExecutedTask):
    name = "mbpp"
    title = "MBPP"
    default_stop = STOP_STRINGS

    why_no_training = "MultiPL-E's licence forbids training on it"

    def test_problems(self) -> list[dict]:
        return [{"id": p["task_id"], "instruction": p["prompt"], "reference": None} for p in load_problems().values()]

    def execution_problems(self) -> dict[str, ExecutionProblem]:
        return {task_id: ExecutionProblem(p["prompt"], p["entry_point"], p["test"])
                for task_id, p in load_problems().items()}

    def reference_code(self, problem: dict) -> str | None:
        """MBPP's original solution where its test split has one, for the train/test overlap check."""
        return reference_solutions().get(problem["id"])
